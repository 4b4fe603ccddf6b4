"""`convolab.analysis.draw` and `convolab draw`: branches side by side, joins visible, a real SVG."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from torch import nn

import convolab
from convolab.analysis import summary
from convolab.analysis.draw import architecture_graph, draw, to_svg
from convolab.cli import main
from convolab.errors import ConfigError

SVG = "{http://www.w3.org/2000/svg}"


class InceptionA(nn.Module):
    """The lecture's InceptionA: four branches concatenated to 16 + 24 + 24 + 24 = 88 channels."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch1x1 = nn.Conv2d(in_channels, 16, 1)
        self.branch5x5 = nn.Sequential(nn.Conv2d(in_channels, 16, 1), nn.Conv2d(16, 24, 5, padding=2))
        self.branch3x3 = nn.Sequential(nn.Conv2d(in_channels, 16, 1), nn.Conv2d(16, 24, 3, padding=1),
                                       nn.Conv2d(24, 24, 3, padding=1))
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), nn.Conv2d(in_channels, 24, 1))

    def forward(self, x):
        outputs = [self.branch1x1(x), self.branch5x5(x), self.branch3x3(x), self.branch_pool(x)]
        return torch.cat(outputs, dim=1)


class InceptionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 10, 5)
        self.inception = InceptionA(10)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(88, 10))

    def forward(self, x):
        return self.head(self.inception(self.stem(x)))


class ResidualBlock(nn.Module):
    """The lecture's residual block: relu(x + conv(relu(conv(x))))."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.conv2(self.relu(self.conv1(x)))
        return self.relu(x + y)


def _parse(svg: str):
    root = ET.fromstring(svg)
    nodes = {g.get("id"): g for g in root.iter(f"{SVG}g") if "node" in (g.get("class") or "").split()}
    edges = [(p.get("data-from"), p.get("data-to")) for p in root.iter(f"{SVG}path")
             if p.get("class") == "edge"]
    return root, nodes, edges


def _box(node) -> tuple[float, float]:
    rect = node.find(f"{SVG}rect")
    return float(rect.get("x")) + float(rect.get("width")) / 2, float(rect.get("y"))


def test_inception_module_has_four_branches_side_by_side_meeting_at_a_cat_node():
    graph = architecture_graph(InceptionNet(), (1, 28, 28), depth=2)
    _, nodes, edges = _parse(to_svg(graph))
    cats = [nid for nid, g in nodes.items() if g.get("data-op") == "cat"]
    assert len(cats) == 1
    sources = [src for src, dst in edges if dst == cats[0]]
    assert sorted(sources) == ["inception_branch1x1", "inception_branch3x3", "inception_branch5x5",
                               "inception_branch_pool"]
    ys = {_box(nodes[s])[1] for s in sources}
    xs = [_box(nodes[s])[0] for s in sources]
    assert len(ys) == 1 and len(set(xs)) == 4  # one row, four columns
    assert "88x24x24" in "".join(nodes[cats[0]].itertext())


def test_every_layer_drawn_at_full_depth_and_long_branches_keep_their_column():
    graph = architecture_graph(InceptionNet(), (1, 28, 28))
    _, nodes, edges = _parse(to_svg(graph))
    column = [_box(nodes[f"inception_branch3x3_{i}"])[0] for i in range(3)]
    assert column[0] == column[1] == column[2]
    assert len([e for e in edges if e[1] == "cat"]) == 4
    assert {g.get("data-op") for g in nodes.values()} >= {"Conv2d", "AvgPool2d", "Linear", "cat"}


def test_depth_1_draws_the_inception_module_as_one_box():
    graph = architecture_graph(InceptionNet(), (1, 28, 28), depth=1)
    assert [(n.label, n.op) for n in graph.nodes] == [
        ("input", "input"), ("stem", "Conv2d"), ("inception", "InceptionA"), ("head", "Sequential"),
        ("output", "output")]
    assert graph.nodes[2].shape == [1, 88, 24, 24]


def test_residual_block_shows_an_add_node_fed_by_the_skip_path():
    _, nodes, edges = _parse(to_svg(architecture_graph(ResidualBlock(), (8, 6, 6))))
    adds = [nid for nid, g in nodes.items() if g.get("data-op") == "add"]
    assert len(adds) == 1
    assert sorted(src for src, dst in edges if dst == adds[0]) == ["conv2", "x"]


def test_googlenet_tv_shows_nine_inception_concats_of_four_branches():
    if "googlenet_tv" not in convolab.list_models():
        pytest.skip("googlenet_tv is not registered yet")
    with torch.device("meta"):
        model = convolab.create_model("googlenet_tv")
    _, nodes, edges = _parse(to_svg(architecture_graph(model, (3, 224, 224), depth=2)))
    cats = [nid for nid, g in nodes.items() if g.get("data-op") == "cat"]
    assert len(cats) == 9
    assert all(len([e for e in edges if e[1] == c]) == 4 for c in cats)


def _render_png(svg_path: Path, png_path: Path) -> str:
    """Render with the first available real SVG renderer; returns its name or skips."""
    fonts = Path(importlib.util.find_spec("matplotlib").origin).parent / "mpl-data" / "fonts" / "ttf"
    if importlib.util.find_spec("resvg_py") is not None:
        import resvg_py

        png = resvg_py.svg_to_bytes(svg_path=str(svg_path), background="white", font_dirs=[str(fonts)])
        png_path.write_bytes(bytes(png))
        return "resvg"
    try:
        import cairosvg

        cairosvg.svg2png(url=str(svg_path), write_to=str(png_path))
        return "cairosvg"
    except (ImportError, OSError):
        pass
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser:
        subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox",
                        f"--screenshot={png_path}", svg_path.as_uri()], check=True, timeout=120,
                       capture_output=True)
        return "chromium"
    pytest.skip("no SVG renderer: install resvg-py or cairosvg (with libcairo), or chromium")


def test_svg_renders_to_a_png_with_a_real_renderer(tmp_path):
    from PIL import Image

    svg_path = tmp_path / "inception.svg"
    draw(InceptionNet(), (1, 28, 28), svg_path, depth=2)
    png_path = tmp_path / "inception.png"
    _render_png(svg_path, png_path)
    image = Image.open(png_path).convert("L")
    root = ET.parse(svg_path).getroot()
    assert image.size == (int(root.get("width")), int(root.get("height")))
    histogram = image.histogram()
    dark = sum(histogram[:128])
    assert dark > 500  # boxes, edges and text were drawn, not a blank page


def _cli(argv: list[str]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(argv) == 0
    return buffer.getvalue()


def test_cli_writes_the_svg_atomically_and_reports_the_graph_size(tmp_path):
    out = tmp_path / "lenet.svg"
    text = _cli(["draw", "lenet5", "--out", str(out)])
    assert text.startswith(f"wrote {out}: 14 nodes, 13 edges")
    _, nodes, edges = _parse(out.read_text())
    assert len(nodes) == 14 and len(edges) == 13
    assert [p.name for p in tmp_path.iterdir()] == ["lenet.svg"]  # no temporary file left behind
    plain = tmp_path / "plain.txt"
    plain.write_text("")
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # same permissions as any new file


def test_draw_refuses_an_input_the_model_cannot_take(tmp_path):
    with pytest.raises(ConfigError, match=r"too small for lenet5 \(default size 1x28x28\)"):
        # (8 px: too small for any lenet5; at 20 px it names img_size=20, which builds it for that size)
        draw(convolab.create_model("lenet5"), (1, 8, 8), tmp_path / "x.svg")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_output_the_system_will_not_take_is_one_config_error(tmp_path, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")  # as /sys answers root, whom os.access lets through

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    out = tmp_path / "x.svg"
    with pytest.raises(ConfigError, match=rf"^`out` {out} cannot be written \(Permission denied\); choose another"):
        draw(convolab.create_model("lenet5"), (1, 28, 28), out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="no /sys (not Linux)")
def test_cli_draw_into_sys_is_one_line_exit_2(capsys):
    assert main(["draw", "lenet5", "--out", "/sys/x.svg"]) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert not out and len(lines) == 1 and lines[0].startswith("convolab draw: error: --out /sys/x.svg ")


@pytest.mark.parametrize("size,words", [
    ((3, 100_000, 100_000), "`input_size` 3,100000,100000: the input at batch 1 would be 112 GiB in float32"),
    ((3, 20_000, 20_000), "conv1's output 1x64x10000x10000 would be 24 GiB in float32"),
])
def test_draw_refuses_a_tensor_above_16_gib_as_summary_does(tmp_path, size, words):
    with torch.device("meta"):
        model = convolab.create_model("resnet18")
    with pytest.raises(ConfigError) as drawn:
        draw(model, size, tmp_path / "x.svg")
    with pytest.raises(ConfigError) as summarized:
        summary(model, size)
    assert words in str(drawn.value) and str(drawn.value) == str(summarized.value)
    assert list(tmp_path.iterdir()) == []


def test_a_convolution_or_pooling_box_gives_its_window_stride_and_padding():
    graph = architecture_graph(convolab.create_model("lenet5"), (1, 28, 28))
    kernels = {n.label: n.kernel for n in graph.nodes if n.kind == "module"}
    assert kernels["features.0"] == "5x5 pad 2" and kernels["features.2"] == "2x2 stride 2"
    assert kernels["features.1"] == ""  # (a Sigmoid: no window)
    svg = to_svg(graph)
    assert ">Conv2d 5x5 pad 2<" in svg and ">AvgPool2d 2x2 stride 2<" in svg and ">Sigmoid<" in svg


def test_a_box_of_a_few_layers_lists_their_windows_in_order():
    # GoogLeNet's Inception branches drawn as one box each: the paper's 5x5 branch, and torchvision's 3x3 in it
    for name, third in (("googlenet", "1x1, 5x5 pad 2"), ("googlenet_tv", "1x1, 3x3 pad 1")):
        graph = architecture_graph(convolab.create_model(name), (3, 224, 224), depth=2)
        kernels = {n.label: (n.op, n.kernel) for n in graph.nodes if n.kind == "module"}
        assert kernels["inception3a.branch1"][1] == "1x1"  # (a conv-norm-activation: its convolution's)
        assert kernels["inception3a.branch2"] == ("Sequential", "1x1, 3x3 pad 1")
        assert kernels["inception3a.branch3"] == ("Sequential", third)
        assert kernels["inception3a.branch4"] == ("Sequential", "3x3 pad 1 ceil, 1x1")
    graph = architecture_graph(convolab.create_model("googlenet"), (3, 224, 224), depth=1)
    kernels = {n.label: n.kernel for n in graph.nodes if n.kind == "module"}
    assert kernels["inception3a"] == ""  # (six windows: too many for a box)
