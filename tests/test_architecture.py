"""The package's shape, read from its source with ``ast``: layers that only import downwards, no
import cycles (imports inside functions and ``TYPE_CHECKING`` blocks count: they are
dependencies too), and one module that reads weight files.

The layer order is the one ``docs/ARCHITECTURE.md`` describes. A new subpackage must be given a
place here before the test passes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "bimlp"

# Bottom first. A module may import from its own layer and from the layers below it, never
# from one above. (The root ``bimlp/__init__.py`` is the facade: its public names load their
# modules lazily, so it names every layer; only the CLI imports from it, for ``__version__``.)
LAYERS = (
    "files",  # atomic writes
    "checkpoint",  # reading and writing weight files: the only module that opens them
    "convert",  # pure readers: bytes -> state dict + configuration, never a model
    "layers",  # quantizers, binary conv, norms, activations
    "models",  # configurations, families, the builder, the networks
    "data",  # datasets, transforms, samplers, the data configuration
    "profile",  # counting params / BOPs / FLOPs on a traced forward pass
    "train",  # the recipe configuration, the loop, distillation, evaluation
    "deploy",  # packing, artifacts, the runtime wrapper, benchmarks
    "commands",  # one module per subcommand
    "cli",  # the argument parser
)
ROOT = "bimlp"
ROOT_IMPORTERS = {"bimlp.cli"}

# Import cycles allowed for now, each with its reason. The test fails when one of them goes
# away too, so that this list never outlives the cycle.
KNOWN_CYCLES: dict[frozenset[str], str] = {}  # none left; an entry needs its reason

# The only module that reads weight files (torch.load, safetensors readers, pickle).
CHECKPOINT_IO = "bimlp.checkpoint"
SAFETENSORS_READERS = {"safe_open", "load", "load_file", "deserialize", "safe_load_file"}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out[".".join(parts)] = (path, is_package)
    return out


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(), str(path)) for name, (path, _) in MODULES.items()}


def _resolve(name: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = name if MODULES[name][1] else name.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(name: str) -> dict[str, int]:
    """Every ``bimlp`` module that module ``name`` imports -> the first line doing so:
    ``import``, ``from ... import`` (the submodule when the name is one) and any string that is
    exactly a module's dotted name (what ``importlib.import_module`` is given by lazy imports,
    e.g. the CLI's table of subcommands)."""
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        if (target == ROOT or target.startswith(ROOT + ".")) and target != name:
            found.setdefault(target, line)

    logger_names = {  # logging.getLogger("bimlp.train") names a logger, not a module
        id(arg) for node in ast.walk(TREES[name])
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("getLogger")
        for arg in node.args
    }
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in MODULES else base, node.lineno)
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and node.value in MODULES and node.value != ROOT and id(node) not in logger_names):
            # a lazy import by name: importlib.import_module("bimlp.x.y") (not the bare "bimlp",
            # which is also a family name and a choice of ``downsample``)
            add(node.value, node.lineno)
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(module: str) -> int:
    part = module.split(".")[1]
    if part not in LAYERS:
        raise AssertionError(f"{module}: subpackage {part!r} has no place in LAYERS")
    return LAYERS.index(part)


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, {}):
            if w not in MODULES:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    return out


def test_the_walker_sees_imports_inside_functions_and_importlib():
    # guards the test itself: these edges exist only as function-level / importlib imports
    assert "bimlp.commands.train" in GRAPH["bimlp.cli"]  # importlib.import_module("...")
    assert "bimlp.models" in GRAPH["bimlp.train.evaluation"]  # inside a function
    assert "bimlp.files" in GRAPH["bimlp.checkpoint"]


def test_every_import_of_bimlp_names_a_module_that_exists():
    missing = [f"{m}:{line} imports {t}" for m, targets in GRAPH.items()
               for t, line in targets.items() if t not in MODULES]
    assert not missing, "\n".join(missing)


def test_no_import_cycles():
    found = {frozenset(c): c for c in _cycles()}
    new = [", ".join(c) for key, c in found.items() if key not in KNOWN_CYCLES]
    assert not new, "modules that import one another (cycles):\n" + "\n".join(new)
    gone = [sorted(key) for key in KNOWN_CYCLES if key not in found]
    assert not gone, f"these cycles are gone: remove them from KNOWN_CYCLES: {gone}"


def test_imports_only_point_down_the_layers():
    upward = []
    for module, targets in GRAPH.items():
        if module == ROOT:
            continue  # the lazy facade
        for target, line in targets.items():
            if target == ROOT:
                if module not in ROOT_IMPORTERS:
                    upward.append(f"{module}:{line} imports the facade {ROOT}")
            elif _layer(target) > _layer(module):
                upward.append(f"{module}:{line} ({LAYERS[_layer(module)]}) imports {target} "
                              f"({LAYERS[_layer(target)]})")
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(upward)


def _is_torch_load(func: ast.expr) -> bool:
    # torch.load(...), torch.serialization.load(...)
    if not isinstance(func, ast.Attribute) or func.attr != "load":
        return False
    base = ast.unparse(func.value)
    return base in ("torch", "torch.serialization")


def test_only_the_checkpoint_module_reads_weight_files():
    found = []
    for module, tree in TREES.items():
        if module == CHECKPOINT_IO:
            continue
        for node in ast.walk(tree):
            line = getattr(node, "lineno", 0)
            if isinstance(node, ast.Call) and _is_torch_load(node.func):
                found.append(f"{module}:{line} calls {ast.unparse(node.func)}")
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("np.load", "numpy.load"):
                pickles = [k for k in node.keywords if k.arg == "allow_pickle"]
                if not pickles or ast.unparse(pickles[0].value) != "False":
                    found.append(f"{module}:{line} calls np.load without allow_pickle=False")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] in ("pickle", "dill", "cloudpickle") or (
                        alias.name.startswith("safetensors")
                    ):
                        found.append(f"{module}:{line} imports {alias.name}")
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                top = node.module.split(".")[0]
                names = {a.name for a in node.names}
                if top in ("pickle", "dill", "cloudpickle"):
                    found.append(f"{module}:{line} imports from {node.module}")
                if top == "safetensors" and names & SAFETENSORS_READERS:
                    found.append(f"{module}:{line} imports {sorted(names & SAFETENSORS_READERS)} "
                                 f"from {node.module}")
                if node.module.startswith("torch") and "load" in names:
                    found.append(f"{module}:{line} imports load from {node.module}")
    assert not found, (f"only {CHECKPOINT_IO} may read weight files; the rest go through it:\n"
                       + "\n".join(found))


def test_every_module_has_a_layer():
    for module in MODULES:
        if module != ROOT:
            _layer(module)


def test_argument_parsers_live_in_the_cli_and_the_commands_only():
    # (checkpoint.py names argparse.Namespace in its unpickling allow-list: released Wave-MLP
    # files hold one; that parses nothing)
    found = [
        f"{module}:{node.lineno}"
        for module, tree in TREES.items()
        if module != "bimlp.cli" and not module.startswith("bimlp.commands")
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in ("ArgumentParser", "add_argument")
    ]
    assert not found, f"argparse parsers outside cli.py / commands/: {found}"


REPO = SRC.parents[1]
CITED = re.compile(r"docs/([A-Za-z_]+\.md)")


def test_citations_point_at_pages_in_the_repository():
    # a user's clone has only what is committed: no external spec, every cited docs/ page exists
    texts = [*SRC.rglob("*.py"), *(REPO / "tests").rglob("*.py"), *(REPO / "tests").rglob("*.md"),
             *(REPO / "configs").glob("*.yaml"), *(REPO / "docs").glob("*.md"), REPO / "README.md",
             REPO / "CONTRIBUTING.md"]
    bad = []
    for path in texts:
        text = path.read_text()
        rel = path.relative_to(REPO)
        if path != Path(__file__) and ("BIMLP.md" in text or "spec \u00a7" in text):
            bad.append(f"{rel}: cites a spec outside the repository")
        bad += [f"{rel}: docs/{name} does not exist" for name in CITED.findall(text)
                if not (REPO / "docs" / name).is_file()]
        if path.suffix == ".md":  # relative links between pages
            for target in re.findall(r"\]\(([^)#:]+\.md)", text):
                if not (path.parent / target).resolve().is_file():
                    bad.append(f"{rel}: link to {target} does not resolve")
    assert not bad, "\n".join(bad)


def _arch_fields() -> dict[str, set[str]]:
    """family -> its architecture field names, from the registered configuration classes."""
    import bimlp.models

    return {f.name: set(f.config_cls.arch_fields()) for f in bimlp.models.list_families()}


def test_architecture_fields_are_declared_once_in_their_family_configuration():
    import bimlp.models

    declared: dict[str, list[str]] = {}  # field name -> "module.Class" declaring it
    for module, tree in TREES.items():
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            for node in cls.body:
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and (
                    isinstance(node.value, ast.Call) and ast.unparse(node.value.func) == "arch"
                ):
                    declared.setdefault(node.target.id, []).append(f"{module}.{cls.name}")
    for family in bimlp.models.list_families():
        bases = {f"{c.__module__}.{c.__name__}" for c in family.config_cls.__mro__}
        for name in family.config_cls.arch_fields():
            places = declared.get(name, [])
            mine = [p for p in places if p in bases]
            assert len(mine) == 1, f"{family.name}.{name} declared in {mine or 'no class'}"
    # and nothing else declares a field with arch(...): no second configuration of a family
    owners = {f"{c.__module__}.{c.__name__}" for f in bimlp.models.list_families()
              for c in f.config_cls.__mro__}
    stray = sorted({p for places in declared.values() for p in places} - owners)
    assert not stray, f"arch(...) fields outside the families' configurations: {stray}"


def test_no_module_keeps_its_own_list_of_architecture_fields():
    # a literal list / tuple / set naming three or more architecture fields of one family is a
    # copy of the configuration's list (metadata keep-lists, packer tables, CLI choices...):
    # derive it from the configuration class (``arch_fields()``) instead
    families = _arch_fields()
    found = []
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                continue
            names = {e.value for e in node.elts
                     if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            for family, fields in families.items():
                if len(names & fields) >= 3:
                    found.append(f"{module}:{node.lineno} lists {family} fields "
                                 f"{sorted(names & fields)}")
    assert not found, "\n".join(found)
