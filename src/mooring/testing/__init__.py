"""Public test helpers: the contract suites every backend must pass.

- :class:`SessionRepositoryContract`: what one repository must do, test by test;
- :class:`SameSessionTrialContract`: N real processes x M agent turns on one session lose
  nothing (see :mod:`mooring.testing.trial`).
"""

from mooring.testing.contract import SessionRepositoryContract
from mooring.testing.trial import SameSessionTrialContract, TrialReport, run_same_session_trial

__all__ = ["SameSessionTrialContract", "SessionRepositoryContract", "TrialReport", "run_same_session_trial"]
