"""The words the rule-based calc extractor looks for: how each numeric input is labelled in case reports, which unit
spellings mean which schema unit, and the keywords of each yes/no finding and categorical input.

Data only (``rules.py`` holds the logic). Labels are case-insensitive regular expressions; short abbreviations that
are also ordinary words or letters (``K``, ``Na``, ``T``, ``pH``) are case-sensitive through ``(?-i:...)``. Units are
tried in order at the text right after the number; each maps to a unit label the tool schema accepts, with a factor
for spellings the schema does not list (insulin in pmol/L, counts ×10³/µL).
"""

from __future__ import annotations

from dataclasses import dataclass

NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"


@dataclass(frozen=True)
class UnitSpelling:
    pattern: str  # regex matched at the text right after the number (case-insensitive)
    label: str  # a unit label of the tool schema
    factor: float = 1.0  # number in the note × factor = number in ``label`` (for spellings the schema lacks)


@dataclass(frozen=True)
class NumericLabel:
    """How one numeric input appears in a note. ``bare`` picks the unit of a number written without one, by
    magnitude: ``((20, "µmol/L"), (0, "mg/dL"))`` = 20 or more is µmol/L, else mg/dL (creatinine)."""

    pattern: str
    units: tuple[UnitSpelling, ...] = ()
    bare: tuple[tuple[float, str], ...] = ()


def _u(pattern: str, label: str, factor: float = 1.0) -> UnitSpelling:
    return UnitSpelling(pattern, label, factor)


MG_DL = _u(r"mg\s*/\s*d[l]|mg\s*/\s*100\s*ml|mg\s*%", "mg/dL")
UMOL_L = _u(r"[µμu]mol\s*/\s*l|micromol(?:es)?\s*/\s*l", "µmol/L")
MMOL_L = _u(r"mmol\s*/\s*l|mmol\b", "mmol/L")
MEQ_L = _u(r"meq\s*/\s*l|meq\b", "mEq/L")
G_DL = _u(r"g\s*/\s*dl|gm\s*/\s*dl|g\s*%", "g/dL")
G_L = _u(r"g\s*/\s*l\b", "g/L")
PER_MM3 = r"/\s*(?:[µμu]l|mm3|mm³|cu\.?\s*mm|mcl)|cells\s*/\s*(?:[µμu]l|mm3|mm³)|per\s+(?:[µμu]l|microliter|mm3|mm³)"
THOUSANDS = (
    r"(?:[x×*]\s*)?10\s*(?:\^|\*\*)?\s*\(?3\)?\s*/\s*(?:[µμu]l|mm3|mm³|mcl)|(?:[x×]\s*)?10³\s*/\s*(?:[µμu]l|mm3|mm³)"
    r"|k\s*/\s*(?:[µμu]l|mm3|mcl)|thousand\s*/\s*(?:[µμu]l|mm3)"
)
PER_LITRE_E9 = r"(?:[x×*]\s*)?10\s*(?:\^|\*\*)?\s*\(?9\)?\s*/\s*l|(?:[x×]\s*)?10⁹\s*/\s*l|g\s*/\s*l\b"
MM_HG = _u(r"mm\s*hg|mmhg|torr", "mm Hg")
PERCENT = _u(r"%|percent", "%")
BEATS = _u(r"bpm|beats?\s*(?:/|per)\s*min(?:ute)?|/\s*min", "beats/min")
BREATHS = _u(r"breaths?\s*(?:/|per)\s*min(?:ute)?|/\s*min|bpm|cycles?\s*/\s*min", "breaths/min")
CELSIUS = _u(r"°\s*c\b|℃|º\s*c\b|degrees?\s*(?:celsius|centigrade|c\b)|c\b", "°C")
FAHRENHEIT = _u(r"°\s*f\b|℉|º\s*f\b|degrees?\s*(?:fahrenheit|f\b)|f\b", "°F")
INFUSION = _u(r"(?:µg|μg|mcg|ug)\s*/\s*kg\s*/\s*min", "µg/kg/min")
_EXCLUDE_URINE = r"(?<!urine )(?<!urinary )(?<!urine-)"

NUMERIC_LABELS: dict[str, NumericLabel] = {
    "creatinine": NumericLabel(
        _EXCLUDE_URINE + r"(?:serum )?\bcreatinine\b(?! clearance| kinase)|(?-i:\bS?Cr\b)", (MG_DL, UMOL_L),
        ((20, "µmol/L"), (0, "mg/dL")),
    ),
    "bun": NumericLabel(
        r"blood urea nitrogen|\bBUN\b|urea nitrogen|" + _EXCLUDE_URINE + r"\burea\b", (MG_DL, _u(MMOL_L.pattern, "mmol/L")),
        ((0, "mg/dL"),),
    ),
    "sodium": NumericLabel(_EXCLUDE_URINE + r"\bsodium\b|(?-i:\bNa\+?(?![a-z]))", (MMOL_L, MEQ_L), ((0, "mmol/L"),)),
    "potassium": NumericLabel(r"\bpotassium\b|(?-i:\bK\+?(?![a-zA-Z]))", (MMOL_L, MEQ_L), ((0, "mmol/L"),)),
    "chloride": NumericLabel(r"\bchloride\b|(?-i:\bCl-?(?![a-z]))", (MMOL_L, MEQ_L), ((0, "mmol/L"),)),
    "bicarbonate": NumericLabel(
        r"bicarbonate|\bbicarb\b|\bHCO3-?|(?:total )?\bCO2\b(?! retention)", (MMOL_L, MEQ_L), ((0, "mmol/L"),)
    ),
    "glucose": NumericLabel(
        r"glucose|blood sugar|\bFBG\b|\bFPG\b", (MG_DL, MMOL_L), ((35, "mg/dL"), (0, "mmol/L"))
    ),
    "albumin": NumericLabel(r"(?<!micro)\balbumin\b(?!uria)", (G_DL, G_L), ((10, "g/L"), (0, "g/dL"))),
    "calcium": NumericLabel(
        r"(?<!ionized )(?<!ionised )\bcalcium\b|(?-i:\bCa\b)", (MG_DL, MMOL_L), ((4, "mg/dL"), (0, "mmol/L"))
    ),
    "bilirubin": NumericLabel(
        r"(?<!direct )(?<!indirect )(?<!conjugated )(?:total )?\bbilirubin\b|\bT\.? ?bil\b|\bTBIL\b", (MG_DL, UMOL_L),
        ((25, "µmol/L"), (0, "mg/dL")),
    ),
    "inr": NumericLabel(r"\bPT-INR\b|\bINR\b|international normali[sz]ed ratio", (), ((0, ""),)),
    "platelets": NumericLabel(
        r"\bplatelets?\b(?: count)?|\bPLTs?\b|\bthrombocytes?\b",
        (_u(THOUSANDS, "×10^9/L"), _u(PER_LITRE_E9, "×10^9/L"), _u(PER_MM3, "/µL")),
        ((2000, "/µL"), (0, "×10^9/L")),
    ),
    "ast": NumericLabel(r"\bAST\b|aspartate (?:amino)?transaminase|aspartate aminotransferase|\bSGOT\b", (_u(r"u\s*/\s*l|iu\s*/\s*l", "U/L"),), ((0, "U/L"),)),
    "alt": NumericLabel(r"\bALT\b|alanine (?:amino)?transaminase|alanine aminotransferase|\bSGPT\b", (_u(r"u\s*/\s*l|iu\s*/\s*l", "U/L"),), ((0, "U/L"),)),
    "total_cholesterol": NumericLabel(
        r"total cholesterol|(?<!HDL )(?<!LDL )(?<!HDL-)(?<!LDL-)(?<!density lipoprotein )\bcholesterol\b|\bTC\b",
        (MG_DL, MMOL_L), ((20, "mg/dL"), (0, "mmol/L")),
    ),
    "hdl": NumericLabel(
        r"\bHDL\b(?:[- ]?c\b|[- ]cholesterol)?|high[- ]density lipoprotein(?: cholesterol)?", (MG_DL, MMOL_L),
        ((10, "mg/dL"), (0, "mmol/L")),
    ),
    "triglycerides": NumericLabel(r"triglycerides?|\bTGs?\b", (MG_DL, MMOL_L), ((15, "mg/dL"), (0, "mmol/L"))),
    "insulin": NumericLabel(
        r"(?:fasting )?\binsulin\b(?! glargine| lispro| aspart| detemir| pump| therapy| treatment| resistance)",
        # 6.0 pmol/L per µIU/mL: the factor MedCalc-Bench's own explanation names
        (_u(r"[µμu]i?u\s*/\s*ml|mi?u\s*/\s*l", "µIU/mL"), _u(r"pmol\s*/\s*l", "µIU/mL", 1 / 6.0)),
        ((0, "µIU/mL"),),
    ),
    "urine_sodium": NumericLabel(r"urin(?:e|ary) sodium|urin(?:e|ary) Na\b|\bUNa\b", (MMOL_L, MEQ_L), ((0, "mmol/L"),)),
    "urine_creatinine": NumericLabel(r"urin(?:e|ary) creatinine|\bUCr\b", (MG_DL,), ((0, "mg/dL"),)),
    "wbc": NumericLabel(
        r"white blood cells?(?: count)?|white (?:blood )?cell count|\bWBCs?\b(?: count)?|\bleu[ck]ocytes?(?: count)?|\bWCC\b",
        (_u(THOUSANDS, "×10^9/L"), _u(PER_LITRE_E9, "×10^9/L"), _u(PER_MM3, "/mm³")),
        ((300, "/mm³"), (0, "×10^9/L")),
    ),
    "hemoglobin": NumericLabel(r"ha?emoglobin|\bHg?b\b", (G_DL, G_L), ((25, "g/L"), (0, "g/dL"))),
    "hematocrit": NumericLabel(r"ha?ematocrit|\bHct\b", (PERCENT,), ((0, "%"),)),
    "ph": NumericLabel(r"(?-i:\bpH\b)", (), ((0, ""),)),
    "pao2": NumericLabel(
        r"\bPaO2\b|\bpO2\b|partial pressure of (?:arterial )?oxygen|arterial oxygen (?:tension|partial pressure)",
        (MM_HG, _u(r"kpa", "kPa")), ((0, "mm Hg"),),
    ),
    "fio2": NumericLabel(r"\bFiO2\b|fraction of inspired oxygen", (PERCENT,), ((1.01, "%"),)),
    "gcs": NumericLabel(r"\bGCS\b(?: score)?|glasgow coma (?:scale|score)(?: score)?", (), ((0, ""),)),
    "qt_ms": NumericLabel(r"\bQT\b(?: interval)?", (_u(r"msec|ms\b|milliseconds?", "ms"),), ((0, "ms"),)),
    "urine_output": NumericLabel(
        r"urine output|urinary output", (_u(r"ml\s*/\s*(?:day|d|24\s*h(?:ours?)?)|ml", "mL/day"),), ((0, "mL/day"),)
    ),
    "a_a_gradient": NumericLabel(r"A-a (?:O2 )?gradient|alveolar[- ]arterial (?:oxygen )?gradient", (MM_HG,), ((0, "mm Hg"),)),
    "target_bmi": NumericLabel(r"target (?:BMI|body mass index)", (_u(r"kg\s*/\s*m(?:\^?2|²)", "kg/m²"),), ((0, "kg/m²"),)),
    "spo2": NumericLabel(
        r"\bSpO2\b|\bSaO2\b|oxygen saturation|\bO2 sat(?:uration)?|\bsaturation\b|\bsaturating\b|pulse oximetry",
        (PERCENT,), ((0, "%"),),
    ),
    "heart_rate": NumericLabel(r"heart rate|pulse(?: rate)?|\bHR\b|(?-i:\bPR\b)|heart beat", (BEATS,), ((0, "beats/min"),)),
    "resp_rate": NumericLabel(
        r"respiratory rate|respiration rate|respirations?|\bRR\b|breathing rate|respiratory frequency", (BREATHS,),
        ((0, "breaths/min"),),
    ),
    "temp_c": NumericLabel(
        r"temperature|\btemp\b|(?-i:\bT\b)|febrile (?:to|at|with)|\bfever (?:of|to|up to)|pyrexia of|\bTmax\b", (CELSIUS, FAHRENHEIT),
        ((50, "°F"), (0, "°C")),
    ),
    "weight_kg": NumericLabel(r"(?:body )?weight|\bweigh(?:s|ed|ing)?\b", (_u(r"kg\b|kilograms?", "kg"), _u(r"lbs?\b|pounds?", "lb")), ((0, "kg"),)),
    "height_cm": NumericLabel(r"\bheight\b|\bstature\b|\bmeasur(?:es|ed|ing)\b", (
        _u(r"cm\b|centimet(?:er|re)s?", "cm"), _u(r"m\b|met(?:er|re)s?\b", "m"), _u(r"in\b|inch(?:es)?", "in"),
    ), ((3, "cm"), (0, "m"))),
    "dopamine": NumericLabel(r"\bdopamine\b", (INFUSION,)),
    "dobutamine": NumericLabel(r"\bdobutamine\b", (INFUSION,)),
    "epinephrine": NumericLabel(r"(?<!nor)\bepinephrine\b|(?<!nor)\badrenaline\b", (INFUSION,)),
    "norepinephrine": NumericLabel(r"norepinephrine|noradrenaline", (INFUSION,)),
}  # fmt: skip

#: yes/no findings: the words of a positive mention (negation is detected around them, not listed here)
FINDINGS: dict[str, str] = {
    "chf": r"heart failure|\bCHF\b|\bHF[rp]EF\b|cardiomyopathy|reduced ejection fraction|(?:LV|left ventricular) (?:systolic )?dysfunction",
    "hypertension": r"(?<!pulmonary )(?<!portal )(?<!intracranial )(?<!ocular )\bhypertension\b|\bHTN\b|high blood pressure|hypertensive",
    "diabetes": r"diabet(?:es|ic)|\bT[12]DM\b|\bDM\b|\bIDDM\b|\bNIDDM\b",
    "stroke_tia": r"\bstroke\b|transient ischa?emic attack|\bTIA\b|\bCVA\b|cerebrovascular accident|cerebral infarct|thromboembolism",
    "vascular_disease": r"myocardial infarction|\bMI\b|\bSTEMI\b|\bNSTEMI\b|peripheral (?:arter|vascular)|\bPAD\b|aortic plaque",
    "renal_disease": r"dialysis|kidney transplant|renal transplant|chronic kidney disease|\bCKD\b|renal (?:failure|insufficiency|disease)|\bESRD\b",
    "liver_disease": r"cirrhosis|cirrhotic|hepatitis|liver disease|hepatic (?:disease|failure|insufficiency)",
    "prior_bleeding": r"bleed(?:ing)?\b|ha?emorrhage|\bhematemesis\b",
    "labile_inr": r"labile INRs?|unstable INRs?|fluctuating INRs?",
    "ischemic_heart_disease": r"myocardial infarction|\bMI\b|angina|coronary artery disease|\bCAD\b|isch(?:a)?emic heart disease|coronary (?:stent|bypass)",
    "cerebrovascular_disease": r"\bstroke\b|transient ischa?emic attack|\bTIA\b|cerebrovascular|\bCVA\b|cerebral infarct",
    "malignancy": r"cancer|carcinoma|malignan(?:cy|t)|lymphoma|leuka?emia|metasta|neoplasm|sarcoma|myeloma|\bRCC\b|\bHCC\b",
    "prior_dvt": r"deep vein thrombosis|deep venous thrombosis|\bDVT\b",
    "prior_pe": r"pulmonary embol(?:ism|us|i)|\bPE\b",
    "black": r"african[- ]american|\bblack (?:man|woman|male|female|patient|race)\b|of african descent",
    "bleeding_medication": r"aspirin|clopidogrel|ticagrelor|prasugrel|\bNSAIDs?\b|ibuprofen|naproxen|diclofenac|antiplatelet",
    "insulin_treatment": r"\binsulin\b(?! resistance| level| concentration)",
    "hormone_use": r"estrogen|oestrogen|oral contraceptive|hormone replacement|\bHRT\b|birth control pill",
    "dialysis": r"dialysis|\bCVVHD?\b|\bCRRT\b|haemofiltration|hemofiltration",
    "confusion": r"confus(?:ed|ion)|disoriented|altered mental (?:status|state)|altered sensorium|delirium|delirious",
    "cough_absent": r"\bcough",  # read inverted: a negated cough is the finding
    "tender_nodes": r"tender (?:anterior )?(?:cervical )?lymph|lymphadenopathy|swollen (?:lymph nodes|glands)",
    "tonsillar_exudate": r"exudat(?:e|es|ive)",
    "fever_24h": r"\bfever|febrile|pyrexi",
    "purulent_tonsils": r"purulent|\bpus\b|exudat(?:e|es|ive)",
    "severe_tonsil_inflammation": r"sever(?:e|ely) (?:inflamed|swollen|enlarged|hypertrophic) tonsils?|tonsillar hypertrophy|kissing tonsils|grade (?:3|4|III|IV) tonsil",
    "no_cough_or_coryza": r"\bcough|coryza|rhinorrh(?:o)?ea|runny nose",  # read inverted
    "dvt_signs": r"calf (?:swelling|tenderness)|leg swelling|swollen (?:leg|calf)|signs of (?:deep vein thrombosis|DVT)",
    "pe_most_likely": r"pulmonary embol(?:ism|us)|\bPE\b",  # positive only with a likelihood word (rules.py)
    "immobilization": r"immobili[sz]|bed ?rest|bedridden|bed-bound|bedbound",
    "recent_surgery": r"\bsurgery\b|surgical|operation|post-?operative|\btrauma\b",
    "hemoptysis": r"ha?emoptysis|coughing up blood|blood-tinged sputum",
    "bedridden_or_major_surgery": r"bedridden|bed ?rest|major surgery|bed-bound",
    "calf_swelling_3cm": r"calf (?:circumference|swelling)[^.]{0,40}\b(?:[3-9]|\d{2}) ?cm",
    "collateral_veins": r"collateral (?:superficial )?veins",
    "entire_leg_swollen": r"(?:entire|whole) (?:left |right )?(?:leg|lower (?:limb|extremity)) (?:was |is )?swollen|swelling of the (?:entire|whole)",
    "deep_vein_tenderness": r"tenderness (?:along|over) the deep ve",
    "pitting_edema": r"pitting (?:o)?edema",
    "leg_paralysis_or_cast": r"paralysis|paresis|plaster cast|\bcast\b",
    "unilateral_leg_swelling": r"unilateral (?:leg |lower (?:limb|extremity) )?(?:swelling|edema)|(?:left|right) (?:leg|calf|lower (?:limb|extremity)) (?:swelling|edema)",
    "high_risk_surgery": r"intraperitoneal|intrathoracic|suprainguinal vascular|aortic (?:aneurysm )?repair|laparotomy|thoracotomy",
    "acute_renal_failure": r"acute (?:kidney injury|renal failure)|\bAKI\b",
    "organ_failure_immunocompromise": r"immunosuppress|immunocompromis|chemotherapy|organ transplant|transplant recipient",
    "nursing_home": r"nursing home|long-term care|care facility|assisted living",
    "pleural_effusion": r"pleural effusion",
    "mechanical_ventilation": r"intubat|mechanical(?:ly)? ventilat|ventilator",
    "mi": r"myocardial infarction|\bMI\b|\bSTEMI\b|\bNSTEMI\b|heart attack",
    "peripheral_vascular_disease": r"peripheral (?:vascular|arter)|\bPAD\b|\bPVD\b|claudication",
    "dementia": r"dementia|alzheimer",
    "copd": r"\bCOPD\b|chronic obstructive|emphysema|chronic bronchitis",
    "connective_tissue_disease": r"lupus|\bSLE\b|rheumatoid|scleroderma|connective tissue disease|polymyositis|dermatomyositis|sj[oö]gren",
    "peptic_ulcer_disease": r"peptic ulcer|gastric ulcer|duodenal ulcer|\bPUD\b",
    "hemiplegia": r"hemipleg|parapleg|hemiparesis|quadripleg",
    "moderate_severe_ckd": r"chronic kidney disease|\bCKD\b|dialysis|renal transplant|kidney transplant|\bESRD\b",
    "leukemia": r"leuka?emia|\bCLL\b|\bAML\b|\bALL\b|\bCML\b",
    "lymphoma": r"lymphoma",
    "aids": r"\bAIDS\b|acquired immunodeficiency",
    "major_surgery_last_month": r"major surgery",
    "chf_last_month": r"heart failure|\bCHF\b",
    "sepsis_last_month": r"\bsepsis\b|septic",
    "pneumonia_last_month": r"pneumonia",
    "plaster_cast": r"plaster cast|\bcast\b",
    "leg_fracture": r"(?:hip|pelvi[cs]|femur|femoral|tibia[l]?|leg) fracture|fracture of the (?:hip|pelvis|femur|tibia|leg)",
    "stroke_last_month": r"\bstroke\b|\bCVA\b",
    "multiple_trauma": r"multiple trauma|polytrauma",
    "spinal_cord_injury": r"spinal cord injury",
    "varicose_veins": r"varicose",
    "swollen_legs": r"(?:bilateral )?(?:leg|lower (?:limb|extremity)) (?:swelling|edema)|swollen legs",
    "central_venous_access": r"central (?:venous|line)|\bPICC\b|port-a-cath|central catheter",
    "family_history_thrombosis": r"family history of (?:venous )?(?:thrombosis|clots|DVT|VTE|thromboembolism)",
    "factor_v_leiden": r"factor V Leiden",
    "prothrombin_20210a": r"prothrombin (?:gene )?(?:20210A|mutation)",
    "elevated_homocysteine": r"homocystein",
    "lupus_anticoagulant": r"lupus anticoagulant",
    "anticardiolipin": r"anticardiolipin|anti-cardiolipin",
    "heparin_induced_thrombocytopenia": r"heparin-induced thrombocytopenia|\bHIT\b",
    "other_thrombophilia": r"thrombophilia|antithrombin(?: III)? deficiency|protein [CS] deficiency",
    "inflammatory_bowel_disease": r"crohn|ulcerative colitis|inflammatory bowel",
    "acute_mi": r"acute myocardial infarction|\bSTEMI\b|\bNSTEMI\b",
    "hypercholesterolemia": r"hypercholesterol|hyperlipid|dyslipid|high cholesterol",
    "obesity": r"\bobes(?:e|ity)\b",
    "smoker": r"smok(?:er|es|ed|ing)|tobacco|cigarette|pack-years?",
    "family_history_cvd": r"family history of (?:premature )?(?:coronary|heart|cardiac|cardiovascular|myocardial)",
    "atherosclerotic_disease": r"coronary artery disease|\bCAD\b|myocardial infarction|\bMI\b|\bstents?\b|\bCABG\b|\bPCI\b|peripheral arter|\bstroke\b|\bTIA\b",
    "melena": r"mela?ena|black,? tarry|tarry stools?",
    "syncope": r"syncop|passed out|fainted|loss of consciousness",
    "bp_medicine": r"antihypertensive|amlodipine|lisinopril|losartan|valsartan|enalapril|ramipril|hydrochlorothiazide|metoprolol|atenolol|nifedipine",
}  # fmt: skip
#: findings whose positive mention is the negation of the listed words ("no cough" = cough absent)
INVERTED = frozenset({"cough_absent", "no_cough_or_coryza"})
#: findings about relatives: a family-history clause is the finding itself, not a relative's condition
ABOUT_FAMILY = frozenset({"family_history_thrombosis", "family_history_cvd"})

#: categorical inputs: (option, keyword regex) tried in order; ``DEFAULT_OPTIONS`` when none is mentioned
CHOICE_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "ascites": (("absent", r"\bno (?:evidence of )?ascites|without ascites|ascites (?:was|is) absent"),
                ("moderate", r"(?:moderate|severe|large|massive|tense) ascites"), ("slight", r"\bascites")),
    "encephalopathy": (("none", r"no (?:hepatic )?encephalopathy|without encephalopathy|no asterixis"),
                       ("grade 3-4", r"grade (?:3|4|III|IV)[^.]{0,20}encephalopathy|(?:severe|hepatic) coma"),
                       ("grade 1-2", r"encephalopathy|asterixis")),
    "liver_severity": (("moderate to severe", r"cirrhosis|portal hypertension|varices|hepatic encephalopathy"),
                       ("mild", r"hepatitis|fatty liver|steatosis|liver disease")),
    "diabetes_severity": (("end-organ damage", r"diabet[^.]{0,60}(?:retinopathy|nephropathy|neuropathy)|(?:retinopathy|nephropathy|neuropathy)[^.]{0,40}diabet"),
                          ("uncomplicated", r"diabet(?:es|ic)|\bT[12]DM\b|\bDM\b")),
    "solid_tumor": (("metastatic", r"metasta"), ("localized", r"cancer|carcinoma|\btumou?r\b|neoplasm|sarcoma")),
    "ecg": (("significant ST deviation", r"ST[- ](?:segment )?(?:depression|elevation|deviation)"),
            ("non-specific repolarization disturbance", r"repolari[sz]ation|T[- ]wave inversion|bundle branch block|\bLBBB\b|\bLVH\b|left ventricular hypertrophy|pacemaker rhythm"),
            ("normal", r"(?:ECG|EKG|electrocardiogram)[^.]{0,40}(?:normal|unremarkable|sinus rhythm)")),
    "troponin": (("more than 3 times normal", r"troponin[^.]{0,60}(?:markedly|significantly) elevated"),
                 ("1-3 times normal", r"(?:elevated|raised|increased|positive) troponin|troponin[^.]{0,30}(?:elevated|raised|positive)"),
                 ("normal", r"troponin[^.]{0,40}(?:normal|negative|undetectable|within)")),
    "heart_history": (("highly suspicious", r"highly suspicious|typical (?:chest pain|angina)"),
                      ("moderately suspicious", r"moderately suspicious"),
                      ("slightly suspicious", r"slightly suspicious|atypical chest pain|non-?cardiac chest pain")),
    "admission_type": (("emergency postoperative", r"emergen(?:cy|t) (?:surgery|laparotomy|operation)|urgent (?:surgery|operation)"),
                       ("elective postoperative", r"elective (?:surgery|operation|\w+ectomy|repair)|after (?:an? )?elective")),
    "surgery_type": (("elective major lower extremity arthroplasty", r"(?:knee|hip) (?:arthroplasty|replacement)"),
                     ("major", r"major (?:abdominal |open )?surgery|laparotomy|\w+ectomy|thoracotomy"),
                     ("minor", r"minor (?:surgery|procedure)")),
    "mobility": (("confined to bed > 72 hours", r"(?:confined to bed|bedridden|bed-bound)[^.]{0,40}(?:72 hours|three days|3 days|days)"),
                 ("on bed rest", r"bed ?rest|bedridden|bed-bound")),
}  # fmt: skip
#: MedCalc-Bench reads an unmentioned finding as absent; these options say "absent / normal"
DEFAULT_OPTIONS = {
    "ascites": "absent", "encephalopathy": "none", "liver_severity": "none", "diabetes_severity": "none or diet-controlled",
    "solid_tumor": "none", "ecg": "normal", "troponin": "normal", "admission_type": "nonoperative",
    "surgery_type": "none", "mobility": "normal",
}  # fmt: skip
#: Glasgow Coma Scale components: (score, words) tried best response first
GCS_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "gcs_eye": (("4", r"eyes? (?:are )?open(?:s|ed|ing)?(?: \w+){0,3} spontaneous|spontaneous(?:ly)? (?:eye )?open|eyes (?:are )?open and track"),
                ("3", r"eyes? open(?:s|ed|ing)? (?:\w+ ){0,2}(?:to|on) (?:voice|verbal|speech|command|call)"),
                ("2", r"eyes? open(?:s|ed|ing)? (?:\w+ ){0,2}(?:to|on|with) (?:pain|painful|sternal|pressure)"),
                ("1", r"(?:no|without|does not|did not) (?:\w+ ){0,2}(?:eye[- ]opening|open (?:his |her |the )?eyes)")),
    "gcs_verbal": (("5", r"(?<!dis)\boriented\b(?! to person only)"),
                   ("4", r"confused|disoriented|\bmumble|\bconfusion"),
                   ("3", r"inappropriate words|random words"),
                   ("2", r"incomprehensible|moan|groan"),
                   ("1", r"no verbal response|nonverbal|non-verbal|aphasic|mute")),
    "gcs_motor": (("6", r"obeys? commands|follows? (?:simple )?commands"),
                  ("5", r"locali[sz]|reaches for|purposeful movement|pushes? (?:\w+ ){0,2}away"),
                  ("4", r"withdraw"),
                  ("3", r"decorticate|abnormal flexion"),
                  ("2", r"decerebrate|extension to pain|extensor posturing"),
                  ("1", r"no motor response|flaccid")),
}  # fmt: skip
