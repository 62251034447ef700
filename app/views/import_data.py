"""Import: turn a folder of frames and a labels file into a dataset (the CLI's `scenescope import`)."""

from __future__ import annotations

import streamlit as st

from app import handlers, widgets

widgets.page_header("Import", "Make a dataset from a folder of frames and its labels file, with the importers "
                    "`scenescope import` uses: every row is checked, and a bad row is named with what is wrong "
                    "(nothing is written then).")

fmt = st.selectbox("Format", list(handlers.IMPORT_FORMATS), key="import_format",
                   format_func=lambda f: handlers.IMPORT_FORMATS[f])
c = st.columns(2)
root = c[0].text_input("Dataset folder (on this machine)", key="import_root",
                       help="The folder the frame paths are relative to; the manifest is written into it.")
labels = c[1].text_input("Labels file", key="import_labels",
                         help="A path, absolute or relative to the dataset folder.")
out = st.text_input("New dataset folder", key="import_out") if fmt == "drivelm" else ""
if st.button("Import", key="import_go", type="primary", disabled=not (root.strip() and labels.strip())):
    bar = st.progress(0.0, text="Starting…")
    ok, msg = handlers.import_dataset(fmt, root, labels, out, progress=widgets.progress_reporter(bar))
    (st.success if ok else st.error)(msg, icon=":material/check_circle:" if ok else ":material/error:")
