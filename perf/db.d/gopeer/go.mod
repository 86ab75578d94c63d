module coilgopeer

go 1.19
