"""The report: tables and figures beside the paper's, captions and numbering, the executed notebooks made
book pages, the book build, its banner and its check in a browser."""
