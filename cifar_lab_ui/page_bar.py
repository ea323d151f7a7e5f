"""On a narrow screen (a phone), the links to every page sit in a row at the top of the page instead of the sidebar.

Streamlit lays its sidebar over the page when the window is narrower than 768 px, and a link tapped in it leaves it
open over most of the screen: changing page took two taps. So at that width the page draws its links in the main
area, one tap away, and the sidebar keeps only the page's controls; wider windows keep the sidebar's links. Which
one shows is decided in the browser (CSS), since the server does not know the screen's width.
"""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

KEY = "page_bar"  # Streamlit gives a keyed container the CSS class st-key-<key>

# 767.98 px: Streamlit's own test for a narrow window (its "md" breakpoint, 768 px, less 0.02). The row's parent is
# hidden, not the row: Streamlit wraps a container in a block that would keep its gap in the page. A divider right
# after the sidebar's links parted them from the controls; with the links hidden it would only top the sidebar.
STYLE = f"""<style>
@media (min-width: 768px) {{ div:has(> .st-key-{KEY}) {{ display: none; }} }}
@media (max-width: 767.98px) {{
  .stSidebar .stElementContainer:has(.stPageLink),
  .stSidebar .stElementContainer:has(.stPageLink) + .stElementContainer:has(hr) {{ display: none; }}
}}
.st-key-{KEY} {{ gap: 0.25rem 0.5rem; }}
</style>"""


def page_bar(pages: Sequence[tuple[str, str]]) -> None:
    """The row of (path, label) links at the top of the main area; shown on narrow screens only."""
    st.html(STYLE)
    with st.container(key=KEY, horizontal=True):
        for path, label in pages:
            st.page_link(path, label=label)
