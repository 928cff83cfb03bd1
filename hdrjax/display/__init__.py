"""HDR files that HDR screens show, and the mapping from the network's radiance to display light.

Where each idea lives:
  mapping.py   relative radiance -> display light (203 cd/m² white, own headroom, 1000 cd/m² cap),
               dynamic range in stops
  transfer.py  BT.2100 PQ and HLG curves, BT.709 -> BT.2020 primaries
  ultrahdr.py  Ultra HDR JPEG (libultrahdr via imagecodecs), its SDR base
  avif.py      10-bit AVIF in PQ or HLG (libavif via imagecodecs)
  brackets.py  8-bit exposure brackets with EXIF exposure
  files.py     the formats by name (`predict --format`, the web page's downloads)
"""
