"""The manifest's cost block (synth.outputs._cost) and how the summary and report.html show it."""

import polars as pl

from synth.outputs import _cost
from synth.report import cost_table_html, summary_table


def _rows() -> pl.DataFrame:
    return pl.DataFrame({
        "method": ["icl", "icl", "icl", "translate", "translate", "translate"],
        "accepted": [True, False, False, True, False, False],
        "reject_reasons": [[], ["unparseable"], ["lid", "fluency"], [], ["surplus"], ["judge_language"]],
        "prompt_tokens": [100, 100, 100, 200, 200, 150],
        "output_tokens": [50, 160, 40, 100, 80, 60],
        "engine_s": [1.0, 2.0, 0.5, 1.5, 1.0, 0.5],
    })


def test_cost_per_accepted_row_and_where_tokens_went_per_method():
    cost = _cost(_rows(), {"prompt_tokens": 300, "output_tokens": 30})
    icl, translate = cost["icl"], cost["translate"]
    assert (icl["attempts"], icl["accepted"], icl["prompt_tokens"], icl["output_tokens"]) == (3, 1, 300, 250)
    assert icl["per_accepted_row"] == {"prompt_tokens": 300.0, "output_tokens": 250.0, "engine_seconds": 3.5}
    # every token of the method lands in one outcome: accepted, or a rejected row's first reason
    assert icl["tokens_by_outcome"] == {"unparseable": {"prompt_tokens": 100, "output_tokens": 160},
                                        "accepted": {"prompt_tokens": 100, "output_tokens": 50},
                                        "lid": {"prompt_tokens": 100, "output_tokens": 40}}
    assert list(translate["tokens_by_outcome"]) == ["accepted", "surplus", "judge_language"]
    assert translate["per_accepted_row"]["prompt_tokens"] == 550.0
    # the judge's tokens per accepted row of the language (2 accepted, whatever the method)
    assert cost["judge"] == {"prompt_tokens": 300, "output_tokens": 30,
                             "per_accepted_row": {"prompt_tokens": 150.0, "output_tokens": 15.0}}


def test_nothing_accepted_gives_no_per_row_figure():
    cost = _cost(_rows().with_columns(accepted=pl.lit(False)), {"prompt_tokens": 10, "output_tokens": 1})
    assert cost["icl"]["per_accepted_row"] == {"prompt_tokens": None, "output_tokens": None, "engine_seconds": None}
    assert cost["judge"]["per_accepted_row"] == {"prompt_tokens": None, "output_tokens": None}
    assert "none accepted" in cost_table_html(cost)


def test_summary_and_report_show_tokens_seconds_and_where_they_went():
    cost = _cost(_rows(), {"prompt_tokens": 300, "output_tokens": 30})
    manifest = {"name": "t", "status": "complete", "model": "m", "filters": {"run": ["lid"], "not_run": {}},
                "languages": {"fra_Latn": {"name": "French", "target": 2, "accepted": 2, "rejected": 4, "shortfall": 0,
                                           "shortfall_reason": None, "rejected_by_reason": {"lid": 1}, "cost": cost}}}
    summary = summary_table(manifest)
    assert ("icl 550 tokens (300 prompt + 250 output) and 3.5 engine s per accepted row "
            "(went to unparseable 260, accepted 150, lid 140)") in summary
    assert "judge 330 tokens (165 per accepted row)" in summary
    table = cost_table_html(cost)
    assert "surplus 280" in table and "judge_language 210" in table and "3.50 engine s" in table


def test_report_html_has_each_languages_cost_table():
    from synth.report import render_html

    cost = _cost(_rows(), {"prompt_tokens": 300, "output_tokens": 30})
    manifest = {"name": "t", "status": "complete", "model": "m", "rounds": 1, "config_hash": "h", "versions": {},
                "prompts": {}, "filters": {"run": ["lid"], "not_run": {}, "preset": "default", "thresholds": {}},
                "languages": {"fra_Latn": {"name": "French", "target": 2, "accepted": 2, "rejected": 4, "shortfall": 0,
                                           "shortfall_reason": None, "rejected_by_reason": {"lid": 1}, "attempts": 6,
                                           "cost": cost}}}
    page = render_html(manifest, None)
    assert "<h3>Cost</h3>" in page and "unparseable 260" in page
