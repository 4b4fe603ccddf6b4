"""The source articles as runnable examples: each demo yields the lines it shows (the CLI prints them).

`list_demos()` names them; `get_demo(name).run(**options)` runs one, with the keyword options it
names in `options`. Demos that train take `epochs`, `output`, `progress` and `seed`, and their last
line is `test accuracy: 0.xxxx`.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..errors import ConfigError
from .bottleneck import bottleneck_demo
from .convolution import corr2d_demo, edge_kernel_demo, shapes_demo
from .lecture import inception_mnist_demo, resnet_mnist_demo
from .pooling import pooling_demo


@dataclass(frozen=True)
class Demo:
    """A worked example: its name, the article it reproduces, what it shows, and its keyword options."""

    name: str
    article: str
    summary: str
    run: Callable[..., Iterator[str]]
    options: tuple[str, ...] = ()

    @property
    def trains(self) -> bool:
        """True for a demo that trains a model (it takes `epochs`), so its last line is its test accuracy."""
        return "epochs" in self.options


TRAINING = ("epochs", "output", "progress", "seed", "threads")


DEMOS = {demo.name: demo for demo in (
    Demo("corr2d", "001", "2-D cross-correlation from scratch: the 3x3 example gives [[19, 25], [37, 43]]",
         corr2d_demo),
    Demo("edge-kernel", "001", "a 6x8 image, its edge map, and the 1x2 kernel [1, -1] learned back by "
         "gradient descent", edge_kernel_demo, options=("seed",)),
    Demo("shapes", "001, 003", "output shapes under padding and stride, checked on nn.Conv2d; the LeNet-5 "
         "shape table", shapes_demo),
    Demo("pooling", "001", "max pooling of arange(16) as 4x4 gives [[10]]; padding, stride, average, "
         "channels", pooling_demo),
    Demo("bottleneck", "004", "a 1x1 bottleneck: 120,422,400 against 12,443,648 multiplications",
         bottleneck_demo),
    Demo("inception-mnist", "000", "the lecture's InceptionA net trained on mnist5k", inception_mnist_demo,
         TRAINING),
    Demo("resnet-mnist", "000", "the lecture's residual net trained on mnist5k", resnet_mnist_demo, TRAINING),
)}


def list_demos() -> list[Demo]:
    """Every demo, in the order of the articles' lessons."""
    return list(DEMOS.values())


def get_demo(name: str, moved: Iterable[str] = ()) -> Demo:
    """The demo called `name`; an unknown name is refused with the closest ones. `moved`: the names the caller
    runs elsewhere (the CLI's demos that became experiments), offered too, as `convolab demo --list` lists them."""
    if name in DEMOS:
        return DEMOS[name]
    names = [*DEMOS, *(m for m in moved if m not in DEMOS)]
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(f"unknown demo {name!r}; {hint}choose one of {', '.join(names)} "
                      "(`convolab demo --list`)")


__all__ = ["DEMOS", "Demo", "get_demo", "list_demos"]
