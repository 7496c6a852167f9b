"""Bills: price usage under a tariff, exactly, with line items a person can check."""
