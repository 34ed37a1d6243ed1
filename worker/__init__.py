"""convoai-worker: executes Agora Conversational AI commands read from Kafka."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("convoai-worker")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
