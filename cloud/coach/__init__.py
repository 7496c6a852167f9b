"""The coach: bill previews and explanations, bill shock, and nudges whose savings are true."""
