"""Languages: URIEL vectors from lang2vec (``uriel``) and URIEL+ (``urielplus``), the choice between the
two sources (``vectors``), dataset codes to URIEL codes (``codes``), names, families and scripts
(``langinfo``). Imports only from ``core``."""
