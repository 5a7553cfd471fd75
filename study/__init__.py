"""study: the demo, the whole-study runner and the HTML report."""
