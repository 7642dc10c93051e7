module runnerfleet.test/pause

go 1.22
