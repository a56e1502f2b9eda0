"""The text modality against the shared modality contract (tests/contract)."""
from __future__ import annotations

from importlib import resources

from contract.modality_contract import ModalityContract, Sample, SampleSet

from copyscope.text.decode import decode_bytes
from copyscope.text.plugin import TextModality

_SAMPLES = resources.files("copyscope").joinpath("samples/text")


def _sample(rel: str) -> Sample:
    return Sample(rel, _SAMPLES.joinpath(rel).read_bytes())


class TestTextModality(ModalityContract):
    def make_plugin(self) -> TextModality:
        return TextModality()

    def sample_pairs(self) -> list[SampleSet]:
        return [
            SampleSet("english",
                      copy=(_sample("suspects/en_light_edit.txt"), _sample("registered/en_soil.txt")),
                      unrelated=(_sample("suspects/innocent_en.txt"), _sample("registered/en_lighthouse.md"))),
            SampleSet("chinese",
                      copy=(_sample("suspects/zh_repost_traditional.txt"), _sample("registered/zh_tea.txt")),
                      unrelated=(_sample("suspects/innocent_zh.txt"), _sample("registered/zh_tea.txt"))),
            SampleSet("chinese-gb18030",
                      copy=(_sample("suspects/zh_fragment_gbk.txt"), _sample("registered/zh_bridge.txt")),
                      unrelated=(_sample("suspects/zh_fragment_gbk.txt"), _sample("registered/zh_tea.txt"))),
            SampleSet("html",
                      copy=(_sample("suspects/blog_repost.html"), _sample("registered/en_lighthouse.md")),
                      unrelated=(_sample("suspects/mixed_en_zh.html"), _sample("registered/en_lighthouse.md"))),
        ]

    def document_text(self, plugin, fp) -> str:  # noqa: ANN001
        # Decoded independently of the fingerprint: spans must index the file's decoded text,
        # markup included (not the stripped plain text the tokenizer saw).
        return decode_bytes(fp.artifact.data, name=fp.artifact.origin).text
