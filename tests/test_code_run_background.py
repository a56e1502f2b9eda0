"""Loop-rolled copies (distinct statements) and ``compare --all-pairs`` scores
taken relative to the run's background (since code.segments/v6)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from copyscope import api
from copyscope.code.plugin import CodeModality, CodeParams, score_matrix
from copyscope.model import Artifact
from copyscope.settings import Settings

UNROLLED = b"""public class Banner {
    public static void main(String[] args) {
        String border = "*=*=*=*=*=*=*=*=*=*=*=*=*";
        System.out.println(border);
        System.out.println("Quarterly revenue report, region north-west");
        System.out.println("Quarterly revenue report, region north-west");
        System.out.println("Quarterly revenue report, region north-west");
        System.out.println("Quarterly revenue report, region north-west");
        System.out.println("Quarterly revenue report, region north-west");
        System.out.println(border);
    }
}
"""

# The same program with its five identical calls rolled into a loop (IR-Plag L6).
ROLLED = b"""class Report {
    public static void main(String[] a) {
        String line = "*=*=*=*=*=*=*=*=*=*=*=*=*";
        System.out.println(line);
        for (int k = 0; k < 5; k++) {
            System.out.println("Quarterly revenue report, region north-west");
        }
        System.out.println(line);
    }
}
"""


def _fp(name: str, data: bytes):
    return CodeModality().fingerprint(Artifact(data, origin=name))


def test_a_loop_rolled_copy_keeps_its_distinct_statements():
    plugin = CodeModality()
    original, rolled = _fp("Banner.java", UNROLLED), _fp("Report.java", ROLLED)
    counted = plugin.verify(rolled, original, None)
    assert counted is not None and counted.score >= 0.6
    # Counted occurrence by occurrence, one println of five is a fifth of the
    # evidence; the distinct reading sees every statement, at distinct_weight.
    no_distinct = CodeModality(CodeParams(distinct_weight=0.0)).verify(rolled, original, None)
    assert no_distinct is not None and no_distinct.score < 0.5 < counted.score
    matrix = score_matrix([rolled, original], [rolled, original], plugin.params)
    assert abs(matrix[0, 1] - counted.score) < 1e-6
    assert abs(matrix[1, 1] - 1.0) < 1e-6        # a file against itself is still 1


def test_run_background_is_subtracted_only_in_runs_large_enough_to_show_it():
    plugin = CodeModality()
    p = plugin.params
    small = np.array([0.4, 0.6, 1.0])
    assert plugin.relative_to_run(small) is small             # fewer than 20 units: untouched
    n_pairs = p.rarity_min_docs * (p.rarity_min_docs - 1) // 2
    run = np.full(n_pairs, 0.6)
    run[:5] = [1.0, 0.8, 0.6, 0.3, 0.0]
    out = plugin.relative_to_run(run)
    assert out[0] == 1.0 and abs(out[1] - 0.5) < 1e-9 and out[2] == 0.0 and out[3] == 0.0 and out[4] == 0.0
    alike = np.full(n_pairs, 0.95)
    alike[0] = 1.0
    capped = plugin.relative_to_run(alike)                    # background capped at max_background
    assert abs(capped[1] - (0.95 - p.max_background) / (1 - p.max_background)) < 1e-9
    assert np.array_equal(plugin.relative_to_run(np.zeros(n_pairs)), np.zeros(n_pairs))


def _solution(i: int) -> str:
    """An independent solution of one exercise: the prompt and the reading that
    the exercise prescribes, then each author's own steps and messages."""
    ops = ["+", "-", "*", "/"]
    own = "\n".join(f'        System.out.println("author {i} step {k}: " + (a {ops[(i + k) % 4]} {k + 2}));'
                     for k in range(4))
    return f"""import java.util.Scanner;
public class S{i} {{
    public static void main(String[] args) {{
        Scanner input = new Scanner(System.in);
        System.out.print("Enter a number: ");
        double a = input.nextDouble();
{own}
    }}
}}
"""


def test_all_pairs_discounts_what_every_solution_of_the_task_shares(tmp_path: Path):
    src = tmp_path / "submissions"
    src.mkdir()
    for i in range(22):
        (src / f"s{i:02d}.java").write_text(_solution(i))
    copy = _solution(3).replace("S3", "Copy").replace("input", "scan")   # renamed: the same statements
    (src / "z_copy.java").write_text(copy)
    settings = Settings(home=tmp_path / "home")
    modalities = api.load_modalities(settings)

    def scores(background: bool) -> dict[tuple[str, str], float]:
        pairs, errors = api.compare_all([src], settings, modalities, background=background)
        assert not errors
        return {(Path(s.a).name, Path(s.b).name): s.score for s in pairs}
    raw, relative = scores(False), scores(True)
    key = ("s03.java", "z_copy.java")
    independent = [k for k in raw if "z_copy.java" not in k]
    assert raw[key] >= 0.9 and relative[key] >= 0.9
    # The independent solutions share the task's prompt and reading: raw, a
    # third of each file; relative to the run, nothing.
    assert np.median([raw[k] for k in independent]) >= 0.3
    assert max(relative[k] for k in independent) == 0.0 < min(raw[k] for k in independent)


def test_directory_units_are_judged_against_the_run_too(tmp_path: Path):
    src = tmp_path / "students"
    for i in range(21):
        (src / f"st{i:02d}").mkdir(parents=True)
        (src / f"st{i:02d}" / "Main.java").write_text(_solution(i))
    (src / "zz").mkdir()
    (src / "zz" / "Main.java").write_text(_solution(5).replace("input", "reader"))
    settings = Settings(home=tmp_path / "home")
    modalities = api.load_modalities(settings)
    raw, _ = api.compare_all([src], settings, modalities, unit="dir", background=False)
    relative, _ = api.compare_all([src], settings, modalities, unit="dir")
    by_name = {(Path(s.a).name, Path(s.b).name): s.score for s in relative}
    assert by_name[("st05", "zz")] >= 0.9
    assert min(s.score for s in raw) > 0.0
    assert max(v for k, v in by_name.items() if "zz" not in k) == 0.0
