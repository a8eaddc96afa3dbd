"""The two ways an evaluation can fail, and the exit codes that tell them apart."""

EXIT_OK = 0
EXIT_REJECTED = 3  # the submission is at fault
EXIT_GRADER_FAULT = 4  # the grader or its data is at fault


class Rejected(Exception):  # noqa: N818 - a verdict, not an error of the code
    """The student's artifact is at fault; ``message`` is written for her and says what to do next."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class GraderFault(Exception):
    """The grader, its dataset or its environment is at fault; never the student's."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# Every code a rejection may carry. A box's run is her fault only under one of these: any other code is not the
# grader speaking, and the worker refuses the result (tests/grader/test_cli.py checks that each raised code is here).
REJECTION_CODES = frozenset(
    {
        "adapter_too_large",
        "artifact_too_large",
        "bad_config",
        "bad_target_modules",
        "bad_weights",
        "code_not_allowed",
        "config_out_of_bounds",
        "full_weights_not_allowed",
        "missing_file",
        "non_finite_outputs",
        "non_finite_weights",
        "not_an_adapter",
        "not_lora",
        "not_safetensors",
        "onnx_check_timeout",
        "onnx_custom_domain",
        "onnx_external_data",
        "onnx_invalid",
        "onnx_not_enabled",
        "onnx_run_failed",
        "onnx_too_large",
        "onnx_unreadable",
        "onnx_wrong_input",
        "onnx_wrong_output",
        "pickle_not_allowed",
        "too_many_tensors",
        "truncated_file",
        "unsupported_adapter_option",
        "wrong_base_model",
        "wrong_output_size",
        "wrong_shape",
        "wrong_tensors",
        "wrong_vocab",
    }
)

# Rejections raised while her model runs on the hidden data. Whatever the message says there might have been built
# from what the grader read, so the student is told these fixed words instead (the other codes come from the checks
# of her own files, and their messages describe her files).
HIDDEN_DATA_REASONS = {
    "non_finite_outputs": (
        "Your model's outputs on the hidden data are not finite (NaN or infinity). Check its weights (e.g. BatchNorm "
        "running variances) and retrain with a lower learning rate."
    ),
    "onnx_run_failed": "model.onnx failed to run on a batch of the hidden images ([N, 3, 64, 64]).",
    "onnx_wrong_output": "model.onnx must have one output and give exactly one face logit per image.",
}
