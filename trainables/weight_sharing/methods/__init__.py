"""Weight-sharing methods, one module each (a family shares one): how a search step updates the
shared weights and the architecture. `base.py` says what a method is; `registry.py` names them.

| module        | methods                       | weights see / architecture update                          |
|---------------|-------------------------------|------------------------------------------------------------|
| `darts.py`    | darts-v1, darts-v2            | the softmax(alpha) mixture / first- or second-order grad   |
| `gdas.py`     | gdas                          | one Gumbel-max op per edge / straight-through gradient     |
| `rsps.py`     | rsps                          | per cell and node random ops / none                        |
| `setn.py`     | setn                          | one uniform op per edge / the mixture gradient             |
| `enas.py`     | enas                          | controller samples / REINFORCE after each epoch            |
| `explained.py`| sanas-darts, sanas-gdas, lease| as DARTS or GDAS / through the saliency-taught student     |
| `autohas.py`  | autohas, autohas-hp           | sampled ops, learning rate, weight decay / straight-through|
| `size.py`     | tas, mask-gumbel, mask-sample | sampled widths (nats-sss) / pair weights, mixture, REINFORCE|

`draws.py` holds the random draws they share (every one through the search's generator).
"""
