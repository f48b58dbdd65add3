"""Presenting: plotly figures, chart images, the PDF brief, config snippets, view data for the pages."""
