"""The code modality against the shared modality contract, plus its own behaviour."""
from __future__ import annotations

from contract.modality_contract import ModalityContract, Sample, SampleSet

import pytest

from copyscope.code.plugin import CodeModality, score_matrix
from copyscope.model import Artifact

ORIGINAL = b'''import java.util.Scanner;

public class Cylinder {
    // compute the volume of a cylinder
    public static void main(String[] args) {
        Scanner input = new Scanner(System.in);
        System.out.print("Enter the radius and length of a cylinder: ");
        double radius = input.nextDouble();
        double length = input.nextDouble();
        double area = radius * radius * 3.14159;
        double volume = area * length;
        if (volume > 1000) {
            System.out.println("That is a large cylinder, volume " + volume);
        }
        System.out.println("The area is " + area);
        System.out.println("The volume of the cylinder is " + volume);
    }
}
'''

# Identifiers renamed, a method extracted, statements reordered, comment dropped.
DISGUISED = b'''import java.util.*;

public class Tabung {
    static double luasAlas(double jari) {
        return jari * jari * 3.14159;
    }

    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        System.out.print("Enter the radius and length of a cylinder: ");
        double jari = in.nextDouble();
        double panjang = in.nextDouble();
        double luas = luasAlas(jari);
        double isi = luas * panjang;
        System.out.println("The area is " + luas);
        if (isi > 1000) {
            System.out.println("That is a large cylinder, volume " + isi);
        }
        System.out.println("The volume of the cylinder is " + isi);
    }
}
'''

UNRELATED = b'''public class Primes {
    public static void main(String[] args) {
        int count = 0;
        for (int n = 2; count < 50; n++) {
            boolean prime = true;
            for (int d = 2; d * d <= n; d++) {
                if (n % d == 0) { prime = false; break; }
            }
            if (prime) { count++; System.out.printf("%5d%s", n, count % 10 == 0 ? "\\n" : ""); }
        }
    }
}
'''


class TestCodeModality(ModalityContract):
    def make_plugin(self) -> CodeModality:
        return CodeModality()

    def sample_pairs(self) -> list[SampleSet]:
        return [SampleSet("java",
                          copy=(Sample("Tabung.java", DISGUISED), Sample("Cylinder.java", ORIGINAL)),
                          unrelated=(Sample("Primes.java", UNRELATED), Sample("Cylinder.java", ORIGINAL)))]

    def document_text(self, plugin, fp) -> str:  # noqa: ANN001
        return fp.artifact.data.decode("utf-8")


def _fp(name: str, data: bytes):
    return CodeModality().fingerprint(Artifact(data, origin=name))


def test_disguised_copy_keeps_its_literals_as_side_channel_evidence():
    m = CodeModality().verify(_fp("Tabung.java", DISGUISED), _fp("Cylinder.java", ORIGINAL))
    assert m.verdict == "copy" and m.signals["literals"] == 1.0
    assert '"The volume of the cylinder is"' in m.extra["shared_literals"]
    assert all(p.query.line_start >= 1 and p.registered.line_end <= ORIGINAL.count(b"\n") for p in m.passages)


def _assert_batch_equals_verify(docs) -> None:  # noqa: ANN001
    plugin = CodeModality()
    matrix = score_matrix(docs, docs, plugin.params)
    for i, q in enumerate(docs):
        for j, r in enumerate(docs):
            m = plugin.verify(q, r)
            assert abs(matrix[i, j] - (0.0 if m is None else m.score)) < 1e-6, (i, j)


def test_batch_scores_equal_pairwise_verify():
    docs = [_fp("a.java", ORIGINAL), _fp("b.java", DISGUISED), _fp("c.java", UNRELATED)]
    _assert_batch_equals_verify(docs)


def test_text_files_are_not_claimed_by_the_code_plugin():
    plugin = CodeModality()
    assert not plugin.accepts(Artifact(b"Plain prose, not code.", origin="notes.txt"))
    assert plugin.accepts(Artifact(ORIGINAL, origin="Cylinder.java"))


FOR_LOOP = b"""
public class Sum {
    public static int total(int[] values, int n) {
        int acc = 0;
        for (int i = 0; i < n; i++) {
            acc += values[i] * values[i] - values[i] / 2;
        }
        return acc;
    }
}
"""
WHILE_LOOP = b"""
class Acc {
    static int run(int[] xs, int count) {
        int s = 0;
        int k = 0;
        while (k < count) {
            s += xs[k] * xs[k] - xs[k] / 2;
            k += 1;
        }
        return s;
    }
}
"""


def test_for_loop_rewritten_as_while_keeps_every_statement():
    m = CodeModality().verify(_fp("b.java", WHILE_LOOP), _fp("a.java", FOR_LOOP))
    assert m.signals["statements"] == pytest.approx(1.0)


DECLARED = b"""
class Digits {
    static void reverse(int number) {
        while (number != 0) {
            int remainder = number % 10;
            System.out.print(remainder);
            number = number / 10;
        }
    }
}
"""
DECLARATION_SPLIT = b"""
class Angka {
    static void terbalik(int angka) {
        while (angka != 0) {
            int sisa;
            sisa = angka % 10;
            System.out.print(sisa);
            angka = angka / 10;
        }
    }
}
"""


def test_an_initialised_declaration_also_counts_as_its_bare_declaration():
    from copyscope.code.plugin import _canonical
    assert _canonical("int I = I % N") == ["int I = I % N", "int I"]
    assert _canonical("I I = new I ( I . I )") == ["I I = new I ( I . I )", "I I"]
    assert _canonical("I . I = N") == ["I . I = N"]            # a field assignment declares nothing
    assert _canonical("I = N") == ["I = N"]
    split = _fp("b.java", DECLARATION_SPLIT)
    assert split.segments["int I"] == 1
    assert _fp("a.java", DECLARED).segments["int I"] == 1
    m = CodeModality().verify(split, _fp("a.java", DECLARED))
    assert 0.8 < m.signals["statements"] < 1.0               # the initialiser itself was rewritten


COMMENTED = b"""
// Normalise the sensor reading against the factory calibration curve
int adjust(int raw) {
    // clamp first so that the lookup table never overflows
    int v = raw > 4095 ? 4095 : raw;
    return v * 3 / 2;
}
"""
SAME_COMMENTS_NEW_CODE = b"""
// Normalise the sensor reading against the factory calibration curve
long correct(long input) {
    // clamp first so that the lookup table never overflows
    if (input < 0) { input = 0; }
    return input << 1;
}
"""
TEMPLATE_ONLY = b"""
/* To change this license header, choose License Headers in Project Properties.
 * To change this template file, choose Tools | Templates */
int adjust(int raw) { return raw + 1; }
"""


def test_shared_comments_are_explicit_evidence_and_templates_are_not():
    plugin = CodeModality()
    m = plugin.verify(_fp("q.c", SAME_COMMENTS_NEW_CODE), _fp("r.c", COMMENTED))
    assert m.signals["comments"] == pytest.approx(1.0)
    assert "clamp first so that the lookup table never overflows" in m.extra["shared_comments"]
    assert m.score >= 0.5
    t = plugin.verify(_fp("q.c", TEMPLATE_ONLY), _fp("r.c", TEMPLATE_ONLY.replace(b"raw + 1", b"raw * 7")))
    assert t is None or t.signals["comments"] is None


def test_batch_scores_equal_pairwise_verify_with_comments_and_loops():
    docs = [_fp(n, d) for n, d in (("a.java", FOR_LOOP), ("b.java", WHILE_LOOP), ("c.c", COMMENTED),
                                   ("d.c", SAME_COMMENTS_NEW_CODE), ("e.c", TEMPLATE_ONLY))]
    _assert_batch_equals_verify(docs)


def test_declaration_pattern_cannot_backtrack_exponentially():
    """A long run of words before something that is not a declaration once made the
    pattern try every way of splitting each word (minutes for 20 words). The
    alarm only turns a hang into a failure; the match takes microseconds."""
    import signal

    from copyscope.code.plugin import _canonical

    def hang(*_):
        raise TimeoutError("declaration pattern backtracks")
    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(20)
    try:
        statement = " ".join(["abcdefghij"] * 200) + " ( I )"
        assert _canonical(statement) == [statement]
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


MESSAGES = b"""
class Report {
    void show(double bmi) {
        System.out.println("BMI is " + bmi);
        System.out.println("Enter weight in pounds: ");
    }
}
"""
RESPACED = b"""
class Summary {
    void print(double v) {
        System.out.println("BMI  is " + v);
        System.out.println("Enter weight in pounds:    ");
    }
}
"""
RECASED = MESSAGES.replace(b"BMI is", b"bmi is").replace(b"Enter weight", b"enter Weight")


def test_a_respaced_message_is_the_same_literal_and_a_recased_one_is_not():
    from copyscope.code.plugin import _literal
    assert _literal('"Enter  weight:\t"') == '"Enter weight:"'
    # Blanks just inside the quotes are layout too: "Underweight " is "Underweight".
    assert _literal('" Underweight  "') == _literal('"Underweight"') == '"Underweight"'
    assert _literal("'a b'") == "'a b'" and _literal('""') == '""' and _literal('" "') == '""'
    # A blank before punctuation is layout: "Enter feet : " is "Enter feet:".
    assert _literal('"Enter feet : "') == _literal('"Enter feet:"') == '"Enter feet:"'
    assert _literal('"a , b ; c . d ! e ?"') == '"a, b; c. d! e?"'
    original = _fp("a.java", MESSAGES)
    assert CodeModality().verify(_fp("b.java", RESPACED), original).signals["literals"] == 1.0
    # Case is the author's: independent solutions of one exercise differ in it
    # more often than copies do (IR-Plag AUC fell on every level when folded).
    assert CodeModality().verify(_fp("c.java", RECASED), original).signals["literals"] == 0.0


BRACED = b"""
int sum(int n, int *v) {
    int s = 0;
    int i = 0;
    for (; i < n; i++) {
        if (v[i] > 0) {
            s += v[i];
        } else {
            s -= 1;
        }
    }
    for (;;) {
        break;
    }
    return s;
}
"""
UNBRACED = b"""
int total(int count, int *values) {
    int acc = 0;
    int k = 0;
    while (k < count) { if (values[k] > 0) acc += values[k]; else acc -= 1; k++; }
    while (true) break;
    return acc;
}
"""


def test_braces_and_empty_for_parts_do_not_change_the_statements():
    """``if (c) x;`` is ``if (c) { x; }``, ``for (; c; u)`` is ``while (c)``
    with its update, and ``for (;;)`` is ``while (true)``."""
    a, b = _fp("a.c", BRACED), _fp("b.c", UNBRACED)
    assert a.segments == b.segments
    assert a.segments["loop ( true )"] == 1 and a.segments["else"] == 1
    assert CodeModality().verify(b, a).signals["statements"] == pytest.approx(1.0)


def test_a_python_condition_in_parentheses_is_not_cut_from_its_line():
    doc = _fp("a.py", b"def f(a, b):\n    if (a) and b:\n        return 1\n    else:\n        return 2\n")
    assert doc.segments["if ( I ) and I :"] == 1 and doc.segments["else :"] == 1


def test_a_declaration_list_is_its_declarations():
    """``double w, f, h;`` declares what three ``double`` statements do: a copier
    who gathers scattered declarations into one list (IR-Plag L3) keeps them."""
    from copyscope.code.plugin import _declaration_parts
    assert _declaration_parts("double I , I , I") == ["double I"] * 3
    assert _declaration_parts("int I = N , I = I ( I , I ) , I") == ["int I = N", "int I = I ( I , I )", "int I"]
    assert _declaration_parts("char * I , * I") == ["char * I", "char * I"]      # the star is the declarator's
    assert _declaration_parts("int I [ N ] , I") == ["int I [ N ]", "int I"]
    assert _declaration_parts("I < I > I , I") == ["I < I > I", "I < I > I"]
    for other in ("return I , I", "I ( I , I )", "I , I = I , I", "for ( int I = N , I = N ; I < I ; I ++ )",
                  'I . I . I ( "a , b" , I )', 'print "x , y" , I', "int I"):
        assert _declaration_parts(other) == [other]
    listed = _fp("a.c", b"int f(int n) {\n  int i, s = 0;\n  for (i = 0; i < n; i++) s += i;\n  return s;\n}\n")
    scattered = _fp("b.c", b"int f(int n) {\n  int s = 0;\n  int i;\n  for (i = 0; i < n; i++) s += i;\n  return s;\n}\n")
    assert listed.segments == scattered.segments


def test_a_rewrapped_expression_is_the_same_statement():
    """Breaking a long expression after an operator, or before ``.``/``&&``,
    is layout: the statement is the same as on one line."""
    one = _fp("a.java", b"class A { double f(double w, double h) {\n"
                        b"  double bmi = w * 0.45 / (h * h) - 1;\n"
                        b"  boolean ok = bmi > 18 && bmi < 25;\n"
                        b"  String s = Integer.toString(7).trim();\n  return bmi; } }\n")
    wrapped = _fp("b.java", b"class A { double f(double w, double h) {\n"
                            b"  double bmi = w * 0.45 /\n      (h * h) -\n      1;\n"
                            b"  boolean ok = bmi > 18\n      && bmi < 25;\n"
                            b"  String s = Integer.toString(7)\n      .trim();\n  return bmi; } }\n")
    assert wrapped.segments == one.segments
    assert one.segments["double I = I * N / ( I * I ) - N"] == 1
