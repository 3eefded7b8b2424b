"""`lead-caller`: the operations command (status, leads, replay, doctor, secrets, smoke).

Not part of the Lambda artifact (it lives outside src/): it runs on an operator's machine
against a deployed stack (`--stack NAME`) or the local stack of `make run` (`--local`).
"""
