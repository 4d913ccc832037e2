package config

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{"512", 512, ""},
		{"0", 0, ""},
		{"-5", -5, ""},
		{"+5", 5, ""},
		{"1B", 1, ""},
		{"10KB", 10_000, ""},
		{"3MB", 3_000_000, ""},
		{"2GB", 2_000_000_000, ""},
		{"64KiB", 65536, ""},
		{"8MiB", 8 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"1.5MiB", 3 << 19, ""},
		{"0.5KB", 500, ""},
		{"10 MB", 10_000_000, ""},
		{"8589934591GiB", 8589934591 << 30, ""},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"-9223372036854775808", -1 << 63, ""},
		{"9223372036854775808", 0, `invalid size "9223372036854775808": out of range`},
		{"8589934592GiB", 0, `invalid size "8589934592GiB": out of range`},
		{"10XB", 0, `invalid size "10XB": unknown unit "XB" (use B, KB, MB, GB, KiB, MiB, GiB)`},
		{"10kb", 0, `invalid size "10kb": unknown unit "kb" (use B, KB, MB, GB, KiB, MiB, GiB)`},
		{"1.5B", 0, `invalid size "1.5B": not a whole number of bytes`},
		{"", 0, `invalid size "": want an integer or a number with a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. "64KiB"`},
		{"KiB", 0, `invalid size "KiB": want an integer or a number with a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. "64KiB"`},
		{"1e6", 0, `invalid size "1e6": want an integer or a number with a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. "64KiB"`},
		{".5KiB", 0, `invalid size ".5KiB": want an integer or a number with a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. "64KiB"`},
		{"1_000", 0, `invalid size "1_000": want an integer or a number with a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. "64KiB"`},
		{"1KiB/s", 0, `invalid size "1KiB/s": unknown unit "s" (use B, KB, MB, GB, KiB, MiB, GiB)`},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseSize(%q) = %v, %v; want error %s", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1500, "1500"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{64 * KiB, "64KiB"},
		{1536 * KiB, "1536KiB"},
		{8 * MiB, "8MiB"},
		{GiB, "1GiB"},
		{10 * GB, "10GB"},
		{1024 * 1000, "1000KiB"},
		{1024 * MB, "1024MB"},
		{3 * MiB / 2, "1536KiB"},
		{-2 * KiB, "-2KiB"},
		{1<<63 - 1, "9223372036854775807"},
		{-1 << 63, "-8589934592GiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if back, err := ParseSize(tt.in.String()); err != nil || back != tt.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in.String(), back, err, int64(tt.in))
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    Rate
		wantErr string
	}{
		{"1KiB/s", 1024, ""},
		{"5000/s", 5000, ""},
		{"2MB/s", 2_000_000, ""},
		{"0/s", 0, ""},
		{"1KiB", 0, `invalid rate "1KiB": want a size per second, e.g. "1KiB/s"`},
		{"1KiB/m", 0, `invalid rate "1KiB/m": want a size per second, e.g. "1KiB/s"`},
		{"/s", 0, `invalid rate "/s": want an integer or a number with a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. "64KiB"`},
		{"1XB/s", 0, `invalid rate "1XB/s": unknown unit "XB" (use B, KB, MB, GB, KiB, MiB, GiB)`},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseRate(%q) = %v, %v; want error %s", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, r := range []Rate{Rate(KiB), 5000, Rate(2 * MB), 1} {
		if back, err := ParseRate(r.String()); err != nil || back != r {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", r.String(), back, err, int64(r))
		}
	}
	if got := Rate(KiB).String(); got != "1KiB/s" {
		t.Errorf("Rate(1024).String() = %q", got)
	}
	if got := Rate(5000).String(); got != "5KB/s" {
		t.Errorf("Rate(5000).String() = %q", got)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want Duration
		str  string
	}{
		{"250ms", Duration(250 * time.Millisecond), "250ms"},
		{"2s", 2 * sec, "2s"},
		{"90s", 90 * sec, "1m30s"},
		{"5m", 5 * 60 * sec, "5m"},
		{"60m", 3600 * sec, "1h"},
		{"1h0m1s", 3601 * sec, "1h0m1s"},
		{"1.5h", 90 * 60 * sec, "1h30m"},
		{"0", 0, "0s"},
		{"-1m", -60 * sec, "-1m"},
		{"1us", Duration(time.Microsecond), "1µs"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if s := got.String(); s != tt.str {
			t.Errorf("Duration(%q).String() = %q, want %q", tt.in, s, tt.str)
		}
		if back, err := ParseDuration(got.String()); err != nil || back != got {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got.String(), back, err, got)
		}
		if got.Std() != time.Duration(tt.want) {
			t.Errorf("Std() = %v", got.Std())
		}
	}
	if _, err := ParseDuration("30"); err == nil || err.Error() != `invalid duration "30": use a number with a unit (ns, us, ms, s, m, h), e.g. "250ms"` {
		t.Errorf("ParseDuration(\"30\") error = %v", err)
	}
}

func TestMarshalYAMLUnits(t *testing.T) {
	for _, tt := range []struct {
		v    interface{ MarshalYAML() (any, error) }
		want string
	}{
		{10 * sec, "10s"},
		{64 * KiB, "64KiB"},
		{Rate(KiB), "1KiB/s"},
	} {
		got, err := tt.v.MarshalYAML()
		if err != nil || got != tt.want {
			t.Errorf("%#v.MarshalYAML() = %v, %v; want %q", tt.v, got, err, tt.want)
		}
	}
}
