"""Item-bank items with ``missing = "informative"``: each item gets its own reporting model."""

import numpy as np
import pandas as pd
import pytest

from nexusbayes.data.panel import validate
from nexusbayes.errors import DataError
from nexusbayes.model.build import Model
from nexusbayes.model.reporting import reporting_cells
from nexusbayes.spec.document import Spec


def votes(with_abstentions: bool = True) -> pd.DataFrame:
    """Six legislators (regions) x 3 terms x 4 roll calls; legislator L1 abstains on two calls."""
    rng = np.random.default_rng(3)
    rows = [{"country": "A", "region": f"L{r}", "period": 2000 + t, "indicator": f"call{c}",
             "value": float(rng.integers(0, 2))} for r in range(6) for t in range(3) for c in range(4)]
    frame = pd.DataFrame(rows)
    frame["status"] = "reported"
    if with_abstentions:
        gone = (frame["region"] == "L1") & frame["indicator"].isin(["call0", "call2"]) & (frame["period"] == 2001)
        frame.loc[gone, "value"] = np.nan
        frame.loc[gone, "status"] = "not_reported"
    return frame


def spec(missing: str = "informative") -> Spec:
    return Spec.from_dict({"name": "votes", "traits": ["ideology"],
                           "indicators": {"anchor": {"family": "normal", "loads": {"ideology": "positive"}}},
                           "item_bank": {"family": "bernoulli", "loads": {"ideology": "free"}, "missing": missing}})


def with_anchor(frame: pd.DataFrame) -> pd.DataFrame:
    base = frame.drop_duplicates(["region", "period"])[["country", "region", "period"]]
    return pd.concat([frame, base.assign(indicator="anchor", value=np.linspace(-1, 1, len(base)), status="reported")],
                     ignore_index=True)


def test_bank_items_get_reporting_cells_and_the_reporting_likelihood():
    s = spec()
    assert s.item_bank.indicator().missing == "informative"
    assert Spec.from_toml(s.to_toml()) == s
    panel = validate(with_anchor(votes()), s, "<votes>")
    cells = reporting_cells(s, panel)
    assert cells.names == [f"call{c}" for c in range(4)]        # every item, the listed anchor not
    assert len(cells.reported) == 4 * 6 * 3 and int((cells.reported == 0).sum()) == 2
    model = Model(s, panel).pymc
    assert model.named_vars_to_dims["reporting_loading"] == ("indicator_informative", "trait")
    assert list(model.coords["indicator_informative"]) == cells.names and len(model.coords["obs_reported"]) == 72


def test_an_informative_bank_without_any_non_report_is_refused():
    with pytest.raises(DataError, match=r"\(every item of the \[item_bank\]\)'\] have missing = \"informative\""):
        validate(with_anchor(votes(with_abstentions=False)), spec(), "<votes>")


def test_an_ignorable_bank_drops_the_non_reports():
    panel = validate(with_anchor(votes()), spec("ignorable"), "<votes>")
    assert reporting_cells(spec("ignorable"), panel) is None and len(panel.not_reported) == 0
