"""The dashboard over run records and decision reports.

    dispute-classifier dashboard            # or: streamlit run dashboard/streamlit_app.py
Reads $DISPUTE_CLASSIFIER_RUNS (default runs/) and $DISPUTE_CLASSIFIER_REPORTS (default
reports/); it never runs a model.
"""

import sys
from pathlib import Path

# `streamlit run dashboard/streamlit_app.py` puts dashboard/ on the path, not the project root.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

VIEWS = Path(__file__).resolve().parent / "views"

# Material icons ship with Streamlit; emoji need a system font that headless machines lack.
st.set_page_config(page_title="Prompt, retrieve or fine-tune?", page_icon=":material/balance:", layout="wide")
pages = [
    st.Page(VIEWS / "verdict.py", title="Verdict", icon=":material/balance:", default=True),
    st.Page(VIEWS / "leaderboard.py", title="Leaderboard", icon=":material/leaderboard:", url_path="leaderboard"),
    st.Page(VIEWS / "break_even.py", title="Break-even", icon=":material/payments:", url_path="break-even"),
    st.Page(VIEWS / "per_class.py", title="Per class", icon=":material/category:", url_path="per-class"),
    st.Page(VIEWS / "errors.py", title="Errors", icon=":material/search:", url_path="errors"),
    st.Page(VIEWS / "training.py", title="Training", icon=":material/show_chart:", url_path="training"),
    st.Page(VIEWS / "data.py", title="Data", icon=":material/dataset:", url_path="data"),
    st.Page(VIEWS / "curves.py", title="Curves", icon=":material/trending_up:", url_path="curves"),
    st.Page(VIEWS / "monitoring.py", title="Monitoring", icon=":material/monitor_heart:", url_path="monitoring"),
]
st.navigation(pages).run()
