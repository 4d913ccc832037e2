package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ConfigStat is the record of the configuration's reloads.
type ConfigStat struct {
	// Applied and Refused count reload attempts (file changes, SIGHUP,
	// POST /admin/reload, Reload calls), refused ones including those
	// whose file could not be read or parsed.
	Applied, Refused uint64
	// LastOK is false when the last attempt was refused: the running
	// configuration is then older than the file.
	LastOK bool
	// LastAttempt is when the last reload was tried (zero: never);
	// LastApplied when the running configuration was applied (at start, or
	// by the last reload applied).
	LastAttempt, LastApplied time.Time
	// Hash identifies the running configuration's settings.
	Hash string
}

// ConfigCollector exports the configuration's reload record.
type ConfigCollector struct{ Stat func() ConfigStat }

var (
	configReloads = prometheus.NewDesc("gatehouse_config_reloads_total", "Configuration reloads tried, by result (applied, refused: the previous configuration kept serving).", []string{"result"}, nil)
	configLastOK  = prometheus.NewDesc("gatehouse_config_last_reload_successful", "1 when the last reload tried was applied (or none was tried), 0 when it was refused.", nil, nil)
	configTried   = prometheus.NewDesc("gatehouse_config_last_reload_timestamp_seconds", "When the last reload was tried (Unix time; 0: never).", nil, nil)
	configApplied = prometheus.NewDesc("gatehouse_config_last_applied_timestamp_seconds", "When the running configuration was applied (Unix time).", nil, nil)
	configInfo    = prometheus.NewDesc("gatehouse_config_info", "The running configuration (1), by the hash of its settings.", []string{"hash"}, nil)
)

// Describe sends the descriptors.
func (c ConfigCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{configReloads, configLastOK, configTried, configApplied, configInfo} {
		ch <- d
	}
}

// Collect reads the record.
func (c ConfigCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.Stat()
	ch <- prometheus.MustNewConstMetric(configReloads, prometheus.CounterValue, float64(s.Applied), "applied")
	ch <- prometheus.MustNewConstMetric(configReloads, prometheus.CounterValue, float64(s.Refused), "refused")
	ok := 0.0
	if s.LastOK {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(configLastOK, prometheus.GaugeValue, ok)
	ch <- prometheus.MustNewConstMetric(configTried, prometheus.GaugeValue, unixSeconds(s.LastAttempt))
	ch <- prometheus.MustNewConstMetric(configApplied, prometheus.GaugeValue, unixSeconds(s.LastApplied))
	ch <- prometheus.MustNewConstMetric(configInfo, prometheus.GaugeValue, 1, s.Hash)
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
