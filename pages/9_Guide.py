"""Guide: a first 45-minute lesson in five steps, each with what to point at and a question for the class, and the
glossary every help line links to."""

from __future__ import annotations

import streamlit as st

from cifar_lab_ui.glossary import TERMS
from cifar_lab_ui.navigation import start_page

# (heading, minutes, page, what to point at, the question to ask)
STEPS = (
    (
        "1. Look at the data",
        5,
        "pages/1_Data.py",
        "The ten classes and a few images of each, at 32×32 pixels: tiny, blurry, the object filling the picture. "
        "The counts are even: 5,000 training and 1,000 test images per class. The test images are kept apart: the "
        "model never learns from them, so they show how it does on pictures it has not seen.",
        "Could you tell a cat from a dog at 32×32 pixels? What in the picture would you look at?",
    ),
    (
        "2. Train",
        10,
        "pages/2_Train.py",
        "Everyone types their name in the sidebar (on a phone: at the top), keeps the classroom preset (two minutes "
        "on this computer) and changes one setting: the learning rate, how far images shift, or mirrored images "
        "off. Start puts each run in a fair queue; the Class page shows the queue on the projector.",
        "If we double the learning rate, will the model learn faster, or worse? Who wants to try?",
    ),
    (
        "3. Watch it learn",
        10,
        "pages/2_Train.py",
        "The loss chart: the thin line is each batch, the thick one its trend, falling as the model learns. The "
        "accuracy chart gains a point per epoch. Test accuracy above train accuracy is expected here: the page says "
        "why. On the Class page, the leaderboard fills as runs finish.",
        "Why does the loss jump up and down from batch to batch, yet fall overall?",
    ),
    (
        "4. Evaluate",
        10,
        "pages/3_Evaluate.py",
        "Per-class accuracy (which classes are easy, which hard) and the confusion matrix: click a cell to see the "
        "test images behind a mix-up, such as cats taken for dogs or trucks for cars.",
        "Which two classes does the model mix up most, and what do they have in common?",
    ),
    (
        "5. Classify your own pictures",
        10,
        "pages/4_Classify.py",
        "Upload a photo, take one, or draw: big filled shapes on a coloured background work best, and the page says "
        'why. Open "Why this prediction?" for the Grad-CAM heat map of where the model looked.',
        "Where did the model look: at the object, or at the background? Can you fool it?",
    ),
)

start_page("Guide")

st.title("A first lesson")
st.write(
    "Forty-five minutes from a dataset to a model that classifies your class's own pictures. Each step names the "
    "page, what to point at, and one question for the class. The help lines on the other pages link their harder "
    "words to the glossary below."
)

for heading, minutes, page, point_at, question in STEPS:
    st.subheader(f"{heading} ({minutes} min)", anchor=heading.split(". ", 1)[1].lower().replace(" ", "-"))
    st.write(point_at)
    st.markdown(f"**Ask:** {question}")
    st.page_link(page, label=f"Open the {page.split('_', 1)[1].removesuffix('.py')} page", icon=":material/east:")

st.header("Glossary", anchor="glossary")
for term in TERMS:
    st.subheader(term.word, anchor=term.anchor)
    st.write(term.meaning)
