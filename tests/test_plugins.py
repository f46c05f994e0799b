"""Third-party strategies: a plugin file, an entry point, and the README's plugin example."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import strategies
from strategies import STRATEGIES, discover, load_entry_point_plugins, load_plugin
from strategies.search_space import defaults

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- plugin-example -->"
DIMS = {"audio": 4, "text": 6}

PLUGIN_SOURCE = textwrap.dedent(
    '''
    import torch
    from torch import nn

    from strategies import register_strategy
    from strategies.base import FusionStrategy, zero_absent


    @register_strategy("{name}")
    class TestPluginStrategy(FusionStrategy):
        """Concatenate and classify; a test plugin (Baltrusaitis et al. 2019)."""

        family = "early"
        description = "test plugin"
        paper = "Baltrusaitis et al. 2019 (TPAMI)"

        def __init__(self, input_dims, num_classes, **hparams):
            super().__init__(input_dims, num_classes, **hparams)
            self.head = nn.Linear(sum(self.input_dims.values()), num_classes)

        def forward(self, inputs, present, token_mask=None):
            parts = [zero_absent(inputs[m], present[:, i]) for i, m in enumerate(self.modalities)]
            return self.head(torch.cat(parts, dim=-1))
    '''
)


def check_forward(name: str) -> None:
    """The registered strategy builds, returns (B, C) finite logits and ignores absent values."""
    cls = discover().get(name)
    model = cls(DIMS, 3, **defaults(cls.search_space)).eval()
    inputs = {m: torch.randn(5, d) for m, d in DIMS.items()}
    present = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1], [0, 1]], dtype=torch.bool)
    out = model(inputs, present)
    assert out.shape == (5, 3) and torch.isfinite(out).all()
    noisy = {m: torch.where(present[:, i : i + 1], x, x + 1e3) for i, (m, x) in enumerate(sorted(inputs.items()))}
    assert torch.allclose(model(noisy, present), out, atol=1e-5)


@pytest.fixture
def cleanup():
    """Forget strategies and modules registered by a test, so other tests see the built-in registry."""
    names, modules = [], []
    yield names, modules
    for name in names:
        STRATEGIES.remove(name)
    for module in modules:
        sys.modules.pop(module, None)


def test_plugin_file_registers_a_working_strategy(tmp_path, cleanup):
    names, modules = cleanup
    name = "test_plugin_file_concat"
    names.append(name)
    plugin = tmp_path / "tmp_fusion_plugin_file.py"
    plugin.write_text(PLUGIN_SOURCE.format(name=name))
    modules.append("fusebench_plugin_tmp_fusion_plugin_file")
    assert name not in STRATEGIES
    load_plugin(plugin)
    assert name in discover().names()
    check_forward(name)


def test_the_package_re_exports_the_registry_and_its_decorator():
    """Plugins written with `from strategies import register_strategy` (before the decorator had its
    own module) and those importing it from strategies.registration fill the same registry."""
    from strategies import registration

    assert strategies.register_strategy is registration.register_strategy
    assert strategies.STRATEGIES is registration.STRATEGIES is STRATEGIES


@pytest.mark.parametrize("import_line", ["from strategies import register_strategy",
                                         "from strategies.registration import register_strategy"])
def test_a_plugin_fingerprints_its_code_not_the_registry(import_line, tmp_path, cleanup):
    """Either import of the decorator: the plugin's fingerprint covers its own module and the
    strategy modules it uses, never the registry machinery (benchmark/run/identity.py)."""
    from benchmark.run.identity import _code_modules

    names, modules = cleanup
    style = "package" if import_line.startswith("from strategies import") else "module"
    name, stem = f"test_plugin_import_{style}", f"tmp_fusion_plugin_import_{style}"
    names.append(name)
    modules.append(f"fusebench_plugin_{stem}")
    source = PLUGIN_SOURCE.format(name=name).replace("from strategies import register_strategy", import_line)
    assert import_line in source
    (tmp_path / f"{stem}.py").write_text(source)
    load_plugin(tmp_path / f"{stem}.py")
    walked = {m.__name__ for m in _code_modules(STRATEGIES.get(name))}
    assert walked == {f"fusebench_plugin_{stem}", "strategies.base", "strategies.search_space"}


def test_missing_plugin_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.py"):
        load_plugin(tmp_path / "nothere.py")


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch, cleanup):
    names, modules = cleanup
    name, module = "test_entry_point_concat", "tmp_fusebench_ep_plugin"
    names.append(name)
    modules.append(module)
    discover()  # built-ins first (before the fake distribution is on sys.path)
    (tmp_path / f"{module}.py").write_text(PLUGIN_SOURCE.format(name=name))
    dist_info = tmp_path / "tmp_fusebench_ep_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: tmp-fusebench-ep-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[{strategies.ENTRY_POINT_GROUP}]\nmy_plugin = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # importlib.metadata scans sys.path for *.dist-info

    assert name not in STRATEGIES
    loaded = load_entry_point_plugins()  # the same code discover() runs
    assert "my_plugin" in loaded
    assert name in STRATEGIES
    check_forward(name)


def test_broken_entry_point_names_itself(tmp_path, monkeypatch):
    dist_info = tmp_path / "tmp_broken_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: tmp-broken-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        f"[{strategies.ENTRY_POINT_GROUP}]\nbroken = tmp_module_that_does_not_exist\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="broken"):
        load_entry_point_plugins()


def example_block(text: str, source: str) -> str:
    """The first ```python block after the plugin-example marker."""
    assert MARKER in text, f"{source} has no {MARKER!r} marker followed by the plugin example"
    after = text.split(MARKER, 1)[1]
    match = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert match, f"no ```python block after {MARKER!r} in {source}"
    return match.group(1)


@pytest.mark.parametrize("document", ["README.md"])
def test_readme_plugin_example_runs(document, tmp_path, cleanup):
    names, modules = cleanup
    path = ROOT / document
    assert path.is_file(), f"{document} is missing"
    code = example_block(path.read_text(encoding="utf-8"), document)
    registered = re.findall(r'@register_strategy\("([^"]+)"\)', code)
    assert len(registered) == 1, "the example registers exactly one strategy with one decorator"
    name = registered[0]
    names.append(name)
    assert name not in STRATEGIES, f"the example's name {name!r} collides with a registered strategy"
    stem = "readme_plugin_example_" + Path(document).stem.lower()
    modules.append(f"fusebench_plugin_{stem}")
    plugin = tmp_path / f"{stem}.py"
    plugin.write_text(code, encoding="utf-8")
    load_plugin(plugin)
    assert name in discover().names()
    check_forward(name)
