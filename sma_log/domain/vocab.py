"""Controlled vocabularies: the codes stored in the database and their labels.

Every coded field stores the short code (left) and shows the label (right). The
data dictionary, the forms and the report all read these tuples, so a code is
defined exactly once.
"""

from __future__ import annotations

Choices = tuple[tuple[str, str], ...]

SMA_TYPES: Choices = (("1", "Type 1"), ("2", "Type 2"), ("3", "Type 3"), ("4", "Type 4"))
SEX: Choices = (("female", "Female"), ("male", "Male"), ("other", "Other / not stated"))
MOTOR_STATUS: Choices = (("non_sitter", "Non-sitter"), ("sitter", "Sitter"), ("walker", "Walker"))

# Regimen + dose. The dose in mg follows from the code (see DOSE_MG).
REGIMENS: Choices = (
    ("std_loading_1", "12 mg loading dose 1"),
    ("std_loading_2", "12 mg loading dose 2"),
    ("std_loading_3", "12 mg loading dose 3"),
    ("std_loading_4", "12 mg loading dose 4"),
    ("std_maintenance", "12 mg maintenance"),
    ("high_loading_1", "50 mg high-dose loading dose 1"),
    ("high_loading_2", "50 mg high-dose loading dose 2"),
    ("high_maintenance", "28 mg high-dose maintenance"),
)
DOSE_MG: dict[str, float] = {
    "std_loading_1": 12,
    "std_loading_2": 12,
    "std_loading_3": 12,
    "std_loading_4": 12,
    "std_maintenance": 12,
    "high_loading_1": 50,
    "high_loading_2": 50,
    "high_maintenance": 28,
}

GUIDANCE: Choices = (
    ("us_realtime", "Ultrasound, real-time"),
    ("us_marking", "Ultrasound-assisted pre-puncture marking"),
    ("landmark", "Landmark"),
    ("fluoroscopy", "Fluoroscopy"),
    ("ct", "CT"),
)
APPROACH: Choices = (
    ("midline", "Midline interlaminar"),
    ("paramedian", "Paramedian / parasagittal oblique interlaminar"),
    ("transforaminal", "Transforaminal"),
    ("other", "Other"),
)
LEVELS: Choices = (
    ("L1-L2", "L1-L2"),
    ("L2-L3", "L2-L3"),
    ("L3-L4", "L3-L4"),
    ("L4-L5", "L4-L5"),
    ("L5-S1", "L5-S1"),
)
POSITION: Choices = (
    ("lateral_left", "Lateral, left side down"),
    ("lateral_right", "Lateral, right side down"),
    ("sitting", "Sitting"),
    ("prone", "Prone"),
)
NEEDLE_TIP: Choices = (("quincke", "Quincke (cutting)"), ("pencil_point", "Pencil-point"))
AXIAL_ROTATION: Choices = (
    ("none", "None"),
    ("mild", "Mild"),
    ("moderate", "Moderate"),
    ("severe", "Severe"),
)
HARDWARE: Choices = (
    ("none", "None"),
    ("growing_rods", "Growing rods"),
    ("posterior_fusion", "Posterior spinal fusion / instrumentation"),
    ("laminotomy_window", "Laminotomy window"),
)
SEDATION: Choices = (
    ("none", "None"),
    ("local", "Local anaesthetic only"),
    ("oral_anxiolytic", "Oral anxiolytic"),
    ("iv_sedation", "IV sedation"),
    ("general", "General anaesthesia"),
)
CSF_APPEARANCE: Choices = (
    ("clear", "Clear"),
    ("blood_tinged", "Blood-tinged, clearing"),
    ("bloody", "Bloody"),
    ("xanthochromic", "Xanthochromic"),
    ("turbid", "Turbid"),
)
FALLBACK: Choices = (
    ("reschedule", "Reschedule"),
    ("fluoroscopy", "Fluoroscopy"),
    ("ct", "CT"),
    ("other", "Other"),
)
SATISFACTION: Choices = (
    ("1", "Very dissatisfied"),
    ("2", "Dissatisfied"),
    ("3", "Neutral"),
    ("4", "Satisfied"),
    ("5", "Very satisfied"),
)


def codes(choices: Choices) -> tuple[str, ...]:
    return tuple(code for code, _ in choices)


def label(choices: Choices, code: str | None) -> str:
    """The label for a code; unknown or missing codes show as themselves or an em dash."""
    if code is None or code == "":
        return "—"
    for c, text in choices:
        if c == code:
            return text
    return str(code)


FOLLOWUP_KINDS: Choices = (
    ("score_5min", "Satisfaction at 5 min"),
    ("day3", "72-hour follow-up"),
)
PDPH_TREATMENT: Choices = (
    ("none", "None"),
    ("conservative", "Conservative / analgesia"),
    ("caffeine", "Caffeine"),
    ("blood_patch", "Epidural blood patch"),
)
CONTACT_METHOD: Choices = (("phone", "Phone"), ("in_person", "In person"))
FOLLOWUP_STATE: Choices = (
    ("open", "Open"),
    ("done", "Done"),
    ("unreachable", "Not reachable"),
    ("declined", "Declined"),
)
PROCEDURE_STATUS: Choices = (
    ("open", "In progress"),
    ("ended", "Ended"),
    ("cancelled", "Cancelled before the first skin puncture (counted in no figure)"),
)

# ---------------------------------------------------------------- pre-dose time-out (issue 14)
#: Patient-level laboratory results the label asks for before a dose; the unit is the
#: canonical one a value is stored in (see :data:`sma_log.domain.predose.LAB_UNITS`).
LAB_TESTS: Choices = (
    ("platelets", "Platelet count"),
    ("pt", "Prothrombin time (PT)"),
    ("aptt", "Activated partial thromboplastin time (aPTT)"),
    ("inr", "INR"),
    ("urine_protein", "Spot urine protein"),
)
LAB_SOURCES: Choices = (
    ("bedside", "Entered at the bedside"),
    ("patient_page", "Entered on the patient page"),
    ("cli", "sma-log labs add"),
    ("import", "Imported from a lab export"),
)
SKIN_SITE: Choices = (
    ("intact", "Intact"),
    ("infected_inflamed", "Infected or inflamed"),
)
ANTITHROMBOTIC: Choices = (
    ("none", "None"),
    ("anticoagulant", "Anticoagulant"),
    ("antiplatelet", "Antiplatelet"),
    ("both", "Anticoagulant and antiplatelet"),
)
