"""The hypothesis settings of every property test in the suite.

Every property is derandomized (CI sees the same examples on every run) and
keeps no example database, so nothing is written into the repository.
"""

import pathlib
import tempfile

from hypothesis import configuration, settings

# deadline=None: a busy CI machine must not turn a slow example into a failure.
PROPERTIES = settings(max_examples=30, deadline=None, derandomize=True, database=None)
# Even with no database, hypothesis caches the constants it finds in local source
# files under its storage directory (./.hypothesis by default) while pytest
# collects the tests, before any fixture runs: point it outside the repository.
configuration.set_hypothesis_home_dir(pathlib.Path(tempfile.gettempdir()) / "tfmodels-hypothesis")
