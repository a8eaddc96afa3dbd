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
