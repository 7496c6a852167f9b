"""The composition root: the one place that knows every part (see ``ohmni.cli``)."""
