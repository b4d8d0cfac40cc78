"""The pure-Kotlin core of the Android sample (android_sample/core), compiled and tested on the JVM.

Exports two small bundles (float32 and int8) with the real exporter, signed with an Ed25519 key made for
the run, compiles the Kotlin sources and their JUnit4 tests with the Debian ``kotlinc`` (Kotlin 1.3), and
runs them against the bundles with the key's public half pinned (``privrec.public_key``): the Kotlin code
must verify ``manifest.sig`` with java.security's Ed25519 before reading any other file (and refuse a wrong
key, a manifest edited after signing, and an unsigned bundle unless explicitly allowed), enforce the path
rules, parse ``manifest.json``/``golden.json`` with its own JSON parser, verify every sha256,
read ``weights.safetensors`` (dequantizing int8) and reproduce ``score``, top-K and ``finetune`` within
the golden tolerances. A bundle with one flipped byte in ``weights.safetensors`` must make the same run
fail with a message naming that file. The same run reproduces every case of the reconstruction recipe's
golden fixture (``tests/golden/reconstruction_recipe.json``: labels from a history, then ``calls``
``finetune`` calls from zeros) with the Kotlin math. The float32 bundle carries the optional
``item_features`` field and file, which the Kotlin core must accept, validate and read back.

The compiled jar is cached under ``android_sample/core/build/`` (git-ignored by ``build/``), keyed by a
hash of the Kotlin sources and the compiler version, so only the first run after an edit pays for
``kotlinc``. Without ``kotlinc`` or JUnit4 the tests skip, unless ``PRIVREC_REQUIRE_KOTLIN=1`` (what
``make test`` sets), where they fail.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from catalog_fixture import write_catalog_fixture

from privrec.export.bundle import export_bundle
from privrec.export.signing import generate_signing_key, write_signature
from privrec.sdk.model import ItemModel

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "android_sample" / "core"
SOURCES = (CORE / "src" / "main" / "kotlin", CORE / "src" / "test" / "kotlin")
JAVA_LIBS = Path("/usr/share/java")
JUNIT_JARS = (JAVA_LIBS / "junit4.jar", JAVA_LIBS / "hamcrest-core.jar")
KOTLIN_STDLIB = JAVA_LIBS / "kotlin-stdlib.jar"
# C1-only JIT and a serial GC: kotlinc and these short JVM runs finish 3-4x faster than with the defaults
# (Debian's kotlinc uses -Xmx256M) when other test workers keep the CPUs busy (measured 16-25 s vs 64-84 s).
FAST_JVM = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
NUM_ITEMS, DIM = 200, 8
FEATURE_COLUMNS = 5  # the float32 bundle ships public item features (`item_features`); the int8 one none
RECIPE_GOLDEN = ROOT / "tests" / "golden" / "reconstruction_recipe.json"
TITLES = ('Amélie "Le fabuleux destin" (2001)', "Se7en\\Seven (1995)", "Léon: The Professional (1994)")

pytestmark = pytest.mark.xdist_group("kotlin-core")  # one worker compiles; the others never wait on it


def _require_tools() -> str:
    kotlinc = shutil.which("kotlinc")
    missing = [str(p) for p in (*JUNIT_JARS, KOTLIN_STDLIB) if not p.is_file()]
    if kotlinc is None:
        missing.insert(0, "kotlinc")
    if shutil.which("java") is None:
        missing.insert(0, "java")
    if missing:
        reason = f"Kotlin toolchain missing: {missing}; `make kotlin-tools` installs it (apt kotlin junit4)."
        if os.environ.get("PRIVREC_REQUIRE_KOTLIN") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    assert kotlinc is not None
    return kotlinc


def _kotlin_files() -> list[Path]:
    return sorted(p for src in SOURCES for p in src.rglob("*.kt"))


def _compile(kotlinc: str) -> tuple[Path, float]:
    """The jar of core + tests, compiled once per source hash. Returns (jar, seconds spent compiling)."""
    version = subprocess.run([kotlinc, "-version"], capture_output=True, text=True, check=True)
    digest = hashlib.sha256(version.stderr.encode() + version.stdout.encode())
    for path in _kotlin_files():
        digest.update(path.relative_to(CORE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    out_dir = CORE / "build" / "jvm" / digest.hexdigest()[:16]
    jar = out_dir / "privrec-core-tests.jar"
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker or run may be compiling the same sources
        if jar.is_file():
            return jar, 0.0
        start = time.perf_counter()
        tmp_jar = out_dir / "partial.jar"
        env = {**os.environ, "JAVA_OPTS": os.environ.get("JAVA_OPTS", " ".join(("-Xmx1g", *FAST_JVM)))}
        proc = subprocess.run(
            [kotlinc, *[str(s) for s in SOURCES], "-cp", os.pathsep.join(str(j) for j in JUNIT_JARS),
             "-d", str(tmp_jar)],
            capture_output=True, text=True, timeout=600, env=env,
        )
        seconds = time.perf_counter() - start
        if proc.returncode != 0 or not tmp_jar.is_file():
            pytest.fail(f"kotlinc failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        tmp_jar.replace(jar)
        (out_dir / "compile_seconds.txt").write_text(f"{seconds:.1f}\n")
        for stale in out_dir.parent.iterdir():  # jars of older sources
            if stale != out_dir:
                shutil.rmtree(stale, ignore_errors=True)
        return jar, seconds


def _test_classes() -> list[str]:
    test_root = SOURCES[1]
    return sorted(
        ".".join(p.relative_to(test_root).with_suffix("").parts) for p in test_root.rglob("*Test.kt")
    )


def _run_junit(
    jar: Path, bundles: list[Path], classes: list[str], *, public_key: Path, via_env: bool = False,
    catalog: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """JUnitCore over ``classes``; the bundle, key and fixture paths go in as system properties, or with
    ``via_env`` as the environment variables the Kotlin tests fall back to when the properties are unset.
    ``catalog`` is the catalog-update fixture (:func:`catalog`) CatalogUpdateTest reads."""
    cp = os.pathsep.join(str(p) for p in (jar, KOTLIN_STDLIB, *JUNIT_JARS))
    inputs = {
        "privrec.bundles": os.pathsep.join(str(b) for b in bundles),
        "privrec.recipe_golden": str(RECIPE_GOLDEN),
        "privrec.public_key": str(public_key),
    }
    if catalog is not None:
        inputs["privrec.catalog"] = str(catalog)
    env = {
        k: v for k, v in os.environ.items()
        if k not in ("PRIVREC_BUNDLES", "PRIVREC_RECIPE_GOLDEN", "PRIVREC_PUBLIC_KEY", "PRIVREC_CATALOG")
    }
    if via_env:
        env.update({name.upper().replace(".", "_"): value for name, value in inputs.items()})
        props = []
    else:
        props = [f"-D{name}={value}" for name, value in inputs.items()]
    return subprocess.run(
        ["java", *FAST_JVM, *props, "-cp", cp, "org.junit.runner.JUnitCore", *classes],
        capture_output=True, text=True, timeout=600, env=env,
    )


def _recipe_case_names() -> list[str]:
    return [case["name"] for case in json.loads(RECIPE_GOLDEN.read_text())["cases"]]


def _model(seed: int) -> ItemModel:
    """A small synthetic model with ~30% exact zeros, so `sparsity` is measured on a real table."""
    rng = np.random.default_rng(seed)
    v = rng.normal(scale=0.6, size=(NUM_ITEMS, DIM)).astype(np.float32)
    v[rng.random(v.shape) < 0.3] = 0.0
    return ItemModel(item_embedding=v, item_bias=rng.normal(scale=0.3, size=NUM_ITEMS).astype(np.float32))


def _item_features() -> np.ndarray:
    """Genre-like multi-hot rows (1-2 of FEATURE_COLUMNS set per item), as side_info builds for MovieLens."""
    rng = np.random.default_rng(7)
    f = (rng.random((NUM_ITEMS, FEATURE_COLUMNS)) < 0.3).astype(np.float32)
    f[np.arange(NUM_ITEMS), rng.integers(0, FEATURE_COLUMNS, NUM_ITEMS)] = 1.0
    return f


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(private_key_path, public_key_path)``: the publisher key the bundles are signed with."""
    return generate_signing_key(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    items = [
        {"index": i, "id": str(1000 + i), "title": f"{TITLES[i % 3]} #{i}"} for i in range(NUM_ITEMS)
    ]
    return {
        precision: export_bundle(
            _model(seed), root / precision, formats=("onnx",), precision=precision, items=items,  # type: ignore[arg-type]
            item_features=_item_features() if precision == "float32" else None, sign_key=keys[0],
        )
        for seed, precision in enumerate(("float32", "int8"))
    }


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path]) -> Path:
    """The catalog-update fixture CatalogUpdateTest reads (:func:`catalog_fixture.write_catalog_fixture`)."""
    return write_catalog_fixture(tmp_path_factory.mktemp("catalog"), keys[0], keys[1])


@pytest.fixture(scope="module")
def core_jar() -> Path:
    jar, _ = _compile(_require_tools())
    return jar


def test_kotlin_core_reproduces_fresh_bundles(
    core_jar: Path, bundles: dict[str, Path], keys: tuple[Path, Path], catalog: Path
) -> None:
    """All JUnit4 tests (signatures, path rules, limits, JSON parser, safetensors, top-K, fine-tune, golden
    self-test, tamper checks, the reconstruction recipe's fixture, the optional ``item_features`` field and
    file, the item map and a catalog update) pass."""
    classes = _test_classes()
    expected = {"dev.privrec.core.BundleTest", "dev.privrec.core.ReconstructionTest", "dev.privrec.core.SignatureTest",
                "dev.privrec.core.CatalogUpdateTest"}
    assert expected <= set(classes)
    proc = _run_junit(core_jar, [bundles["float32"], bundles["int8"]], classes, public_key=keys[1], catalog=catalog)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"Kotlin core tests failed:\n{output}"
    assert "OK (" in proc.stdout
    # The self-test printed one line per golden case of each bundle, every one ok.
    for precision in ("float32", "int8"):
        golden = json.loads((bundles[precision] / "golden.json").read_text())
        assert f"({precision}, {NUM_ITEMS} items × {DIM})" in proc.stdout
        assert proc.stdout.count("golden.json cases[") >= len(golden["cases"])
    # ... and one line per case of the recipe fixture.
    for name in _recipe_case_names():
        assert f"reconstruction_recipe.json cases[{name}]:" in proc.stdout, proc.stdout
    # The exporter's item_features.safetensors was read back by the Kotlin core (ItemFeaturesTest).
    assert json.loads((bundles["float32"] / "manifest.json").read_text())["item_features"] == {
        "file": "item_features.safetensors", "columns": FEATURE_COLUMNS
    }
    assert f"float32: item_features.safetensors {NUM_ITEMS} × {FEATURE_COLUMNS}" in proc.stdout, proc.stdout
    # Each bundle's signature was verified with the pinned key (SignatureTest).
    key_id = json.loads((bundles["int8"] / "manifest.sig").read_text())["key_id"]
    for precision in ("float32", "int8"):
        assert f"{precision}: manifest.sig verifies with pinned key {key_id}" in proc.stdout, proc.stdout
    assert "FAILED" not in proc.stdout
    # A catalog update: the Kotlin device that stored its history by item id, then installed v2, serves what a
    # device that started on v2 serves, and what the Python runtime recommends (CatalogUpdateTest).
    fixture = json.loads(catalog.read_text())
    assert len(fixture["dropped"]) == 3
    assert (
        f"catalog update: 3 of {len(fixture['history'])} stored interactions name items v2 removed; "
        "top-10 equals a device that started on v2 and the Python runtime's"
    ) in proc.stdout, proc.stdout


def test_kotlin_core_reads_its_inputs_from_the_environment(
    core_jar: Path, bundles: dict[str, Path], keys: tuple[Path, Path]
) -> None:
    """Without -D properties the Kotlin tests take PRIVREC_BUNDLES, PRIVREC_PUBLIC_KEY and PRIVREC_RECIPE_GOLDEN
    (an IDE or CI run)."""
    proc = _run_junit(
        core_jar, [bundles["float32"]], ["dev.privrec.core.ReconstructionTest", "dev.privrec.core.BundleTest"],
        public_key=keys[1], via_env=True,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"Kotlin core tests failed with their inputs in the environment:\n{output}"
    assert "OK (" in proc.stdout
    assert all(f"reconstruction_recipe.json cases[{name}]: " in proc.stdout for name in _recipe_case_names())


def test_kotlin_core_refuses_a_tampered_weights_file(
    core_jar: Path, bundles: dict[str, Path], keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """One flipped byte in weights.safetensors: the run fails and the message names the file."""
    tampered = tmp_path / "tampered"
    shutil.copytree(bundles["int8"], tampered)
    weights = tampered / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) - 5] ^= 0x01  # inside the tensor data, so only the hash can tell
    weights.write_bytes(bytes(data))
    proc = _run_junit(core_jar, [tampered], ["dev.privrec.core.BundleTest"], public_key=keys[1])
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"the Kotlin tests accepted a tampered bundle:\n{output}"
    assert "dev.privrec.core.BundleException: weights.safetensors: sha256" in output, output


def test_kotlin_core_refuses_a_schema_change(
    core_jar: Path, bundles: dict[str, Path], keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """A manifest with a field docs/BUNDLE.md does not define breaks the Kotlin test, naming the field, even when
    the publisher signed it (the signature says who wrote it, not that it is valid)."""
    changed = tmp_path / "changed"
    shutil.copytree(bundles["float32"], changed)
    manifest = json.loads((changed / "manifest.json").read_text())
    manifest["signatures"]["score"]["inputs"][1]["dtype"] = "int64"
    data = json.dumps(manifest).encode()
    (changed / "manifest.json").write_bytes(data)
    write_signature(changed, data, keys[0])  # the low-level signer: sign_bundle would refuse this manifest
    proc = _run_junit(core_jar, [changed], ["dev.privrec.core.BundleTest"], public_key=keys[1])
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"the Kotlin tests accepted a changed schema:\n{output}"
    assert 'manifest.json: field "signatures.score" must be' in output, output


def test_kotlin_core_refuses_a_manifest_edited_after_signing(
    core_jar: Path, bundles: dict[str, Path], keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """The privacy ledger an app shows, changed without touching any listed file: only the signature can tell,
    and the Kotlin run fails naming manifest.sig."""
    edited = tmp_path / "edited"
    shutil.copytree(bundles["int8"], edited)
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["privacy"] = {"mode": "central", "ledger": [], "epsilon": 0.1, "delta": 1e-6}
    (edited / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    proc = _run_junit(core_jar, [edited], ["dev.privrec.core.BundleTest"], public_key=keys[1])
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"the Kotlin tests accepted a manifest edited after signing:\n{output}"
    assert "dev.privrec.core.BundleException: manifest.sig: the signature does not verify manifest.json" in output, output
