"""convolab: the classic convolutional networks, built from readable blocks, measured and trained."""
from ._registry import list_models, register_model
from ._version import __version__
from .errors import ConvolabError
from .models import create_model

__all__ = ["ConvolabError", "__version__", "create_model", "list_models", "register_model"]
