"""The merge cost benchmark's summary (medians per table, ratios to the full load) and the changes it
makes in the source."""

from __future__ import annotations

import pytest

from benchmarks.merge_cost import change_sql, summarize


def test_summary_takes_medians_per_table_and_the_ratio_of_their_sums():
    runs = [
        {"table": "Posts", "rows": 100, "changed": 1, "full_s": 10.0, "merge_s": 1.0, "merge_report_s": 2.0},
        {"table": "Posts", "rows": 100, "changed": 1, "full_s": 12.0, "merge_s": 3.0, "merge_report_s": 4.0},
        {"table": "Posts", "rows": 100, "changed": 1, "full_s": 11.0, "merge_s": 2.0, "merge_report_s": 3.0},
        {"table": "Users", "rows": 10, "changed": 0, "full_s": 4.0, "merge_s": 1.0, "merge_report_s": 1.5},
    ]
    summary = summarize(runs)
    assert summary["tables"]["Posts"] == {"rows": 100, "changed": 1, "full_s": 11.0, "merge_s": 2.0,
                                          "merge_report_s": 3.0, "ratio": 0.182, "report_ratio": 0.273}
    assert (summary["full_s"], summary["merge_s"], summary["ratio"], summary["report_ratio"]) == (15.0, 3.0, 0.2, 0.3)
    with pytest.raises(ValueError, match="no runs"):
        summarize([])
    with pytest.raises(ValueError, match="0 seconds"):
        summarize([{**runs[0], "full_s": 0.0}])


def test_change_sql_updates_four_fifths_and_inserts_one_fifth_of_the_fraction():
    sql = change_sql("Posts", "LastActivityDate", 0.01, 10_000_000)
    assert sql[0] == ('UPDATE "Posts" SET "LastActivityDate" = (SELECT max("LastActivityDate") FROM "Posts") + '
                      """INTERVAL '1 hour' WHERE "Id" % 125 = 0 AND "Id" < 10000000""")
    assert '"Id" % 500 = 1' in sql[1]
    assert sql[-2:] == ['INSERT INTO "Posts" SELECT * FROM changed', "DROP TABLE changed"]
