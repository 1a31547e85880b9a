# pdsim plan plots; regenerate with: cd <this directory> && gnuplot plots.gp
set datafile separator ','
set key outside right top
set grid
terms = 'pngcairo svg'
exts = 'png svg'
if (!strstrt(GPVAL_TERMINALS, 'pngcairo')) terms = 'png svg'
do for [t=1:2] {
  set terminal word(terms, t) size 900,540
  set output 'attainment_vs_rate.'.word(exts, t)
  set title 'SLO attainment vs arrival rate (top configurations)'
  set xlabel 'arrival rate (req/s)'
  set ylabel 'SLO attainment'
  set yrange [0:1.05]
  set logscale x
  plot 'sweep.csv' every ::1 using 3:($1==1?$4:1/0) with linespoints title "#1 4P1D h100-sxm/h100-sxm", 'sweep.csv' every ::1 using 3:($1==2?$4:1/0) with linespoints title "#2 4C h100-sxm", 'sweep.csv' every ::1 using 3:($1==3?$4:1/0) with linespoints title "#3 2C h100-sxm", 0.9 with lines dashtype 2 lc rgb 'black' title 'target'
  unset logscale x
  set yrange [*:*]
  set output 'cost_vs_ratio.'.word(exts, t)
  set title "cost per req/s of goodput vs prefill:decode GPU ratio"
  set xlabel 'prefill GPUs / decode GPUs'
  set logscale x 2
  set ylabel "$/h per req/s of goodput"
  set logscale y
  plot 'cost_vs_ratio.csv' every ::1 using 6:(strcol(10) ne '' ? $10 : 1/0) with points pt 1 lc rgb 'gray' title 'estimated (per-instance goodputs)', 'cost_vs_ratio.csv' every ::1 using 6:(strcol(9) ne '' ? $9 : 1/0) with points pt 7 ps 1.2 title 'verified (recommended rate)'
  unset logscale y
  unset logscale x
  set output 'pareto.'.word(exts, t)
  set title 'output tokens/s per GPU vs tokens/s per user (points meeting the SLO target)'
  set xlabel 'output tokens/s per GPU'
  set ylabel 'tokens/s per user (1 / mean TPOT)'
  plot 'sweep.csv' every ::1 using 5:($4>=0.9?$6:1/0) with points pt 6 lc rgb 'gray' title 'sweep points', 'pareto.csv' every ::1 using 5:6 with linespoints pt 7 lw 2 title 'Pareto frontier'
  set output
}
