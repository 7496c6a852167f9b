"""Where readings come from: one small source per transport behind the same interface."""
