"""The report's QC table: the odd sample of an experiment is flagged and listed first."""

from __future__ import annotations

import numpy as np

from microdiff.report import qc


def experiment(n=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append({"sample": f"s{i:02d}", "dna_median": 300 + rng.normal(0, 5),
                     "dna_noise_sd": 12 + rng.normal(0, 0.3), "constant": False,
                     "nuclei": int(80 + rng.integers(-6, 7)),
                     "uncertainty": 0.05 + rng.normal(0, 0.003)})  # fmt: skip
    return rows


def test_outlier_sample_is_flagged_and_first():
    rows = experiment()
    rows[7] |= {"nuclei": 9, "uncertainty": 0.30}  # a blurred, nearly empty field
    table, z = qc.qc_table(rows)
    assert table.loc[0, "sample"] == "s07" and table.loc[0, "n_flags"] == 2
    assert "nuclei 9" in table.loc[0, "flags"] and "uncertainty" in table.loc[0, "flags"]
    assert (table.loc[1:, "n_flags"] == 0).all()
    assert z.loc[0, "nuclei"] < -qc.THRESHOLD
    assert "s07" in qc.qc_html(table, z).split("s00")[0]  # the page lists it before the rest


def test_constant_channel_and_empty_sample_are_flagged_whatever_the_others():
    rows = experiment()
    rows[2] |= {"constant": True}
    rows[5] |= {"nuclei": 0}
    table, _ = qc.qc_table(rows)
    flags = table.set_index("sample")["flags"]
    assert "constant channel" in flags["s02"] and "no nuclei" in flags["s05"]


def test_few_samples_flag_nothing_by_z():
    table, z = qc.qc_table(experiment(n=2))
    assert (table["n_flags"] == 0).all() and z.isna().all().all()


def test_figure_draws_the_table():
    table, z = qc.qc_table(experiment())
    fig = qc.qc_figure(table, z)
    drawn = [ax for ax in fig.axes if ax.has_data()]
    assert len(drawn) == len(z.columns)  # one panel per measure
