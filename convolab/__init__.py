"""convolab: the classic convolutional networks, built from readable blocks, measured and trained."""
from ._platform import quiet_interrupt_while_starting

with quiet_interrupt_while_starting():  # (the command's first seconds go to importing torch)
    from ._registry import list_models, register_model
    from ._version import __version__
    from .errors import ConvolabError
    from .pretrained import create_model  # the plain builder, or with weights (pretrained=...)

__all__ = ["ConvolabError", "__version__", "create_model", "list_models", "register_model"]
