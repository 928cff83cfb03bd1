"""A local web page for hdrjax: drop photos, see the HDR result, download the files.

Where each idea lives:
  cli.py       `hdrjax-serve` / `python -m hdrjax.serve`: load the model, listen, serve
  app.py       the HTTP routes (FastAPI) over the worker
  jobs.py      the queue: one model, one worker thread, job records, progress, clean-up
  uploads.py   what an upload must be (format from the bytes, byte and megapixel limits, decodes)
  static/      the page itself: index.html, app.js (views, sliders, tone curves), style.css
"""
