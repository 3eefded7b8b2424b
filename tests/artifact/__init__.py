"""Tests of the `sam build` output run under the Lambda Runtime Interface Emulator."""
