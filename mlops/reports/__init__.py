"""Reports: Markdown, JSON, HTML and plots."""
