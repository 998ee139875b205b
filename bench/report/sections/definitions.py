"""The metric definitions, as formulas (typeset in the PDF, LaTeX math in the Markdown).

They state what ``bench.evaluation.metrics.scores_from_confusion`` computes, on the predictions of a cell
pooled over all its folds.
"""

from __future__ import annotations

from ..context import ReportContext
from ..document import Block, Formula, Heading, Para

UF1 = Formula(
    typst='"UF1" = 1/C sum_(c=1)^C (2 "TP"_c) / (2 "TP"_c + "FP"_c + "FN"_c)',
    latex=r"\mathrm{UF1} = \frac{1}{C} \sum_{c=1}^{C} \frac{2\,\mathrm{TP}_c}{2\,\mathrm{TP}_c + \mathrm{FP}_c + \mathrm{FN}_c}")
UAR = Formula(
    typst='"UAR" = 1/C sum_(c=1)^C "TP"_c / N_c',
    latex=r"\mathrm{UAR} = \frac{1}{C} \sum_{c=1}^{C} \frac{\mathrm{TP}_c}{N_c}")
ACC = Formula(
    typst='"Accuracy" = (sum_(c=1)^C "TP"_c) / N',
    latex=r"\mathrm{Accuracy} = \frac{\sum_{c=1}^{C} \mathrm{TP}_c}{N}")


def build(ctx: ReportContext) -> list[Block]:
    return [
        Heading("Metric definitions"),
        Para(f"For the {ctx.run.n_classes} classes c = 1 … C of this run ({', '.join(ctx.run.classes)}), "
             "TP_c, FP_c and FN_c count the true positives, false positives and false negatives of class c "
             "over the test predictions of a cell pooled over all its folds (MEGC2019), N_c is the number "
             "of test samples of class c and N of all classes:"),
        UF1, UAR, ACC,
        Para("A class with no test sample and no prediction is left out of the UF1 mean, and a class "
             "with no test sample out of the UAR mean (their terms are 0/0). UF1 and UAR weigh every "
             "class equally, however rare; accuracy weighs every sample equally."),
    ]
