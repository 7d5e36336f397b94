module ambit.test/chart_render

go 1.19
