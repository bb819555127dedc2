import contextlib
import os

# Most of the suite's time is XLA compiling (`--compile-report`), and 40% of that is
# LLVM optimising machine code that a test then runs for a moment. Unless
# NEUROSIM_TEST_XLA_OPT=default (or XLA_FLAGS sets a level), the suite compiles at
# LLVM's level 0: the same programs and operations, without the optimiser's time (on
# 2 cores the suite took 28 minutes where it took 36 to 39), whose results can differ
# from the default build's in the last bits. Tests marked `default_compile` are about
# the code XLA builds by default (two forms of a program that agree to a few ulps
# because XLA builds them alike; a program that once hung LLVM's optimiser; the demo as
# `make demo` builds it): they are skipped at level 0, and `make test` runs them at the
# default level after the rest.
_OPT = "--xla_backend_optimization_level"
if os.environ.get("NEUROSIM_TEST_XLA_OPT") != "default" and _OPT not in os.environ.get(
    "XLA_FLAGS", ""
):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_OPT}=0".strip()
_LEVEL_SET = _OPT in os.environ.get("XLA_FLAGS", "")

import jax  # noqa: E402  (after XLA_FLAGS)
import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if not _LEVEL_SET:
        return
    skip = pytest.mark.skip(
        reason="about XLA's default optimisation level: run with "
        "NEUROSIM_TEST_XLA_OPT=default (`make test` does)"
    )
    for item in items:
        if "default_compile" in item.keywords:
            item.add_marker(skip)


@contextlib.contextmanager
def _precision(x64: bool):
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", x64)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def x64():
    """Run a test in float64 (gradient and accuracy checks)."""
    with _precision(True):
        yield


@pytest.fixture(scope="module")
def float64():
    """Run a whole test module in float64 (for module-scoped simulation fixtures)."""
    with _precision(True):
        yield


@pytest.fixture
def float32():
    """Run a test in float32, also inside a float64 module."""
    with _precision(False):
        yield


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module: a whole run compiles a few
    thousand, and holding them all grows the process by gigabytes."""
    yield
    jax.clear_caches()


# ----- `--compile-report`: where the suite's time goes, per test module -------------
# JAX reports the duration of each trace, lowering and XLA compilation through
# `jax.monitoring`; summed per module (and over the pytest-xdist workers), they are
# printed at the end. `make test` asks for it: compilation is most of the suite's time.
_PHASES = {
    "jaxpr_trace_duration": "trace",
    "jaxpr_to_mlir_module_duration": "lower",
    "backend_compile_duration": "compile",
}
_report: dict = {}
_tests: dict = {}
_module = ["(outside tests)"]
_test = ["(outside tests)"]


def pytest_addoption(parser):
    parser.addoption(
        "--compile-report",
        action="store_true",
        help="print JAX's tracing, lowering and XLA compile time per test module",
    )


def _listen(event, duration, **_):
    phase = _PHASES.get(event.rsplit("/", 1)[-1])
    if phase is not None:
        row = {phase: duration, "programs": int(phase == "compile")}
        _add(_report, _module[0], row)
        _add(_tests, _test[0], row)


def pytest_configure(config):
    if config.getoption("--compile-report"):
        jax.monitoring.register_event_duration_secs_listener(_listen)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _module[0] = item.nodeid.split("::")[0]
    _test[0] = item.nodeid
    yield


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: hand the sums to the controller
        workeroutput["compile_report"] = _report
        workeroutput["compile_report_tests"] = _tests


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    output = getattr(node, "workeroutput", {})
    for report, key in ((_report, "compile_report"), (_tests, "compile_report_tests")):
        for name, row in output.get(key, {}).items():
            _add(report, name, row)


def pytest_terminal_summary(terminalreporter, config):
    if not config.getoption("--compile-report") or not _report:
        return
    write = terminalreporter.write_line
    terminalreporter.section("JAX: trace, lowering and XLA compile time per module (s)")
    rows = sorted(_report.items(), key=lambda item: -item[1].get("compile", 0.0))
    write(f"{'compile':>8} {'trace':>7} {'lower':>7} {'programs':>8}  module")
    for module, row in [("(all)", _total(_report)), *rows[:15]]:
        write(_row(row, module))
    # Module-scoped fixtures count toward the first test that asks for them.
    write("")
    write("the 20 tests with the most tracing, lowering and compile time:")
    tests = sorted(_tests.items(), key=lambda item: -_jax_time(item[1]))
    for test, row in tests[:20]:
        write(_row(row, test))


def _jax_time(row):
    return sum(row.get(phase, 0.0) for phase in _PHASES.values())


def _row(row, name):
    return (
        f"{row.get('compile', 0):8.1f} {row.get('trace', 0):7.1f} "
        f"{row.get('lower', 0):7.1f} {int(row.get('programs', 0)):8d}  {name}"
    )


def _add(report, module, row):
    """Adds `row` (seconds per phase, programs) to `report[module]`."""
    mine = report.setdefault(module, {})
    for key, value in row.items():
        mine[key] = mine.get(key, 0) + value


def _total(report):
    total = {}
    for row in report.values():
        _add(total, "(all)", row)
    return total["(all)"]
