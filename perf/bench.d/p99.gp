# SPDX-License-Identifier: MIT
# p99 latency against offered rate, one line per server, from report.py's chart data
# (columns: rate, coil, nginx, h2o; p99 in µs). perf/bench calls:
#   gnuplot -e "dat='x.dat'; out='x.png'; subtitle='...'" perf/bench.d/p99.gp
set terminal pngcairo size 960,600 font "DejaVu Sans,11"
set output out
set title "p99 latency at a fixed offered rate (open loop, coil-load, 64 connections)\n" . subtitle
set xlabel "offered rate (k requests/s)"
set ylabel "p99 latency (ms, log scale)"
set logscale y
set format y "%g"
set grid xtics ytics mytics
set key top left
set datafile missing "NaN"
plot dat using ($1/1000):($2/1000) with linespoints lw 2 pt 7 title "coil", \
     dat using ($1/1000):($3/1000) with linespoints lw 2 pt 5 title "nginx", \
     dat using ($1/1000):($4/1000) with linespoints lw 2 pt 9 title "h2o"
