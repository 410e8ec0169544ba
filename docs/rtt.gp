# made by bench/rtt.py: gnuplot rtt.gp > rtt.svg
set terminal svg size 1100,480 dynamic font "sans,12" noenhanced
set datafile separator "\t"
set multiplot layout 1,2 title "examples/three_models over a 100 Mbit/s link, 8 MiB responses in 4 KiB pieces (rttrelay, two namespaces)"
set xlabel "round-trip time (ms)"
set ylabel "MB/s (log scale)"
set logscale y
set yrange [0.02:30]
set key right center font "sans,10"
set grid
set title "Portico's sends (complete when in the socket buffer)"
plot "rtt.dat" using 1:2 with linespoints title "sync" lw 2 pt 5 dt 1, \
     "rtt.dat" using 1:3 with linespoints title "sync-buffer" lw 2 pt 5 dt 2, \
     "rtt.dat" using 1:4 with linespoints title "async1" lw 2 pt 6 dt 1, \
     "rtt.dat" using 1:5 with linespoints title "async1-buffer" lw 2 pt 6 dt 2, \
     "rtt.dat" using 1:6 with linespoints title "asyncN" lw 2 pt 7 dt 1, \
     "rtt.dat" using 1:7 with linespoints title "asyncN-buffer" lw 2 pt 7 dt 2
set title "zc=1: unbuffered sends complete on ACK (as in HTTP.SYS)"
plot "rtt.dat" using 1:8 with linespoints title "sync zc" lw 2 pt 5 dt 1, \
     "rtt.dat" using 1:9 with linespoints title "sync-buffer zc" lw 2 pt 5 dt 2, \
     "rtt.dat" using 1:10 with linespoints title "async1 zc" lw 2 pt 6 dt 1, \
     "rtt.dat" using 1:11 with linespoints title "async1-buffer zc" lw 2 pt 6 dt 2, \
     "rtt.dat" using 1:12 with linespoints title "asyncN zc" lw 2 pt 7 dt 1, \
     "rtt.dat" using 1:13 with linespoints title "asyncN-buffer zc" lw 2 pt 7 dt 2
unset multiplot
