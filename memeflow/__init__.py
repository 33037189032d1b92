"""memeflow: neural search for memes and other images, served as a Jina Flow."""

import os
import warnings

# Jina reads this at send time: no telemetry from any process that imports memeflow.
os.environ.setdefault("JINA_OPTOUT_TELEMETRY", "1")
# jina-hubble-sdk imports pkg_resources; its deprecation warning is not ours to act on.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

__version__ = "0.1.0"
