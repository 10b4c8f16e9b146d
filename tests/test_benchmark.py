"""tools/benchmark.py runs end to end with tiny settings (no timings are asserted)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import benchmark  # noqa: E402


def test_benchmark_reports_every_contender_ratio_and_environment(shared_data, capsys):
    argv = ["--examples", "200", "--repeats", "2", "--batch-sizes", "100"]
    report = benchmark.main([*argv, "--data-dir", str(shared_data / "mnist")])
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(report))
    result = report["results"]["float32/batch_100"]
    contenders = result["contenders"]
    expected = {"keras_vae", "keras_io", "ceiling"} | (
        {"pytorch_examples"} if benchmark.torch is not None else set()
    )
    assert set(contenders) == expected
    for name, measured in contenders.items():
        assert len(measured["examples_per_second_per_round"]) == 2, name
        assert measured["examples_per_second"] > 0, name
        assert measured["examples_per_cpu_second"] > 0, name
    assert contenders["keras_vae"]["jit_compile"] is True  # the default on CPU
    faster = max(
        ("keras_io", "pytorch_examples"),
        key=lambda name: contenders.get(name, {}).get("examples_per_second", 0),
    )
    assert result["faster_template_peer"] == faster
    assert result["ratio_to_faster_template_peer"] == (
        contenders["keras_vae"]["examples_per_second"] / contenders[faster]["examples_per_second"]
    )
    ceiling = contenders["ceiling"]
    assert ceiling["gflop_per_second"] == ceiling["examples_per_second"] * 4.1e6 / 1e9
    assert contenders["keras_vae"]["fraction_of_ceiling"] == (
        contenders["keras_vae"]["examples_per_second"] / ceiling["examples_per_second"]
    )
    environment = report["environment"]
    assert environment["tensorflow"] and environment["keras"] and environment["cpu_model"]
    assert environment["nproc"] >= 1 and environment["date"].startswith("20")
