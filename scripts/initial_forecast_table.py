"""`python scripts/initial_forecast_table.py [folder of the real files]`: README's "Current results" table.

The quickstart model's forecast before training (its epoch 0, which every full run kept): the range-corrected
volatility anchor times the training quantiles of y / sigma, on every real file and the quickstart market,
against garch_t_tod and har_gk on the test split, with the paired circular-block-bootstrap 95% interval of the
loss difference to garch_t_tod and the calibration-noise p-value. Loading only: no training, about a minute."""
import sys

import torch
from omegaconf import OmegaConf
from migt_train.data import load_market
from migt_train.evaluation.metrics import quantile_metrics
from migt_train.evaluation.baselines import fit_baselines
from migt_train.evaluation.comparison import per_sample_loss, circular_block_bootstrap
from migt_train.evaluation.calibration_noise import calibration_noise
R = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/real/"  # the folder of the real files
LEVELS=[0.05,0.1,0.25,0.5,0.75,0.89,0.94]
sets=[("nq15","nq_15m_2018-2021.csv",15,{}),("qqq","qqq_1m_2025.csv",5,{}),("fesx","fesx_1m_2006.csv",5,{"timezone":"Europe/Berlin","timestamp_label":"end"}),("es25","es_1m_2025.csv",5,{}),
("nq26","nq_1m_2026-01-20_2026-02-28.csv",5,{}),("es26","es_1m_2026-01-20_2026-02-28.csv",5,{}),("ym26","ym_1m_2026-01-20_2026-02-28.csv",5,{}),("rty26","rty_1m_2026-01-20_2026-02-28.csv",5,{}),("synthetic",None,5,{})]
out={}
print("| set | test n | model (initial) | garch_t_tod | har_gk | skill vs garch_t_tod [95% CI of the loss difference ×1e-4] | vs har_gk | per horizon vs garch 15m/30m/1h/2h/4h | calibration error (p) |")
print("|---|---|---|---|---|---|---|---|---|")
for name,f,bm,extra in sets:
    hz=[15//bm,30//bm,60//bm,120//bm,240//bm]
    base={"source":"ohlcv","path":R+f} if f else {"source":"synthetic","synthetic":{"n_days":250}}
    d=load_market(OmegaConf.create({**base,"bar_minutes":bm,"horizons":hz,"max_seq_len":1440//bm,"vol_anchor":True,"event_calendar":True,**extra}))
    b=fit_baselines(d,LEVELS)
    rows=d.splits["test"]; y=d.targets[rows]
    qm=(d.vol_anchor[rows].double()[...,None]*d.anchored_quantiles(LEVELS).double()[None]).float()
    qg=b["garch_t_tod"].predict(rows).float(); qh=b["har_gk"].predict(rows).float()
    mm=quantile_metrics(qm,y,LEVELS,d.horizon_names); mg=quantile_metrics(qg,y,LEVELS,d.horizon_names); mh=quantile_metrics(qh,y,LEVELS,d.horizon_names)
    diff=(per_sample_loss(qm,y,LEVELS)-per_sample_loss(qg,y,LEVELS)).mean(1)
    lo,hi=circular_block_bootstrap(diff, max(hz))
    p=calibration_noise(mm["calibration_error"], rows.numpy(), hz, LEVELS)["p_value"]
    ph=" / ".join(f"{1-mm['per_horizon'][k]['pinball_loss']/mg['per_horizon'][k]['pinball_loss']:+.1%}" for k in d.horizon_names)
    if d.oracle is not None:
        qo=torch.from_numpy(d.oracle.quantiles(rows.numpy(),LEVELS)).float(); mo=quantile_metrics(qo,y,LEVELS,d.horizon_names)["pinball_loss"]
        mc=quantile_metrics(b["climatology"].predict(rows).float(),y,LEVELS,d.horizon_names)["pinball_loss"]
        gap=f" gap closed: model {(mc-mm['pinball_loss'])/(mc-mo):.3f}, garch {(mc-mg['pinball_loss'])/(mc-mo):.3f}"
    else: gap=""
    print(f"| {name} | {len(rows)} | {mm['pinball_loss']*1e4:.4f} | {mg['pinball_loss']*1e4:.4f} | {mh['pinball_loss']*1e4:.4f} | {1-mm['pinball_loss']/mg['pinball_loss']:+.2%} [{lo*1e4:+.3f}, {hi*1e4:+.3f}] | {1-mm['pinball_loss']/mh['pinball_loss']:+.2%} | {ph} | {mm['calibration_error']:.4f} ({p:.2f}) |{gap}", flush=True)
