"""The rule registry: each code, its documentation, and how its findings are worded and fixed."""

from __future__ import annotations

from gradlint.rules.base import Rule
from gradlint.rules.gl001_stale_gradients import RULE as GL001
from gradlint.rules.gl002_discarded_gradients import RULE as GL002
from gradlint.rules.gl9xx_input_problems import GL900, GL901, GL902, GL999
from gradlint.rules.gl101_accumulated_loss import RULE as GL101
from gradlint.rules.gl102_clip_scaled_gradients import RULE as GL102
from gradlint.rules.gl103_misplaced_clipping import RULE as GL103
from gradlint.rules.gl104_scheduler_before_optimizer import RULE as GL104
from gradlint.rules.gl105_backward_after_step import RULE as GL105
from gradlint.rules.gl106_second_backward import RULE as GL106
from gradlint.rules.gl107_autograd_variable import RULE as GL107
from gradlint.rules.gl108_data_attribute import RULE as GL108
from gradlint.rules.gl109_leaf_updated_in_place import RULE as GL109
from gradlint.rules.gl110_moved_leaf import RULE as GL110
from gradlint.rules.gl111_zero_missing_grad import RULE as GL111
from gradlint.rules.gl112_step_before_backward import RULE as GL112
from gradlint.rules.gl113_training_in_eval_mode import RULE as GL113
from gradlint.rules.gl114_evaluation_with_autograd import RULE as GL114
from gradlint.rules.gl115_unscaled_accumulation import RULE as GL115
from gradlint.rules.gl800_unused_noqa import RULE as GL800

RULES: dict[str, Rule] = {
    rule.code: rule
    for rule in (
        GL001,
        GL002,
        GL101,
        GL102,
        GL103,
        GL104,
        GL105,
        GL106,
        GL107,
        GL108,
        GL109,
        GL110,
        GL111,
        GL112,
        GL113,
        GL114,
        GL115,
        GL800,
        GL900,
        GL901,
        GL902,
        GL999,
    )
}
