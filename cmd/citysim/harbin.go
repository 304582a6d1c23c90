package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// district is one of Harbin's districts with what shapes its readings.
type district struct {
	name      string        // topic level
	stations  [3][2]float64 // its air stations' longitude and latitude, away from the district's label
	pollution float64       // PM2.5 base in µg/m³ (industry, coal heating)
	traffic   float64       // congestion base, 1-10
	people    float64       // relative population, weights requests
}

var districts = []district{
	{"daoli", [3][2]float64{{126.6323, 45.7648}, {126.6017, 45.7648}, {126.6070, 45.7437}}, 48, 5.5, 1.0},
	{"nangang", [3][2]float64{{126.6888, 45.7602}, {126.6653, 45.7740}, {126.6500, 45.7554}}, 45, 6.0, 1.2},
	{"daowai", [3][2]float64{{126.6694, 45.7921}, {126.6306, 45.7873}, {126.6594, 45.7800}}, 62, 5.0, 0.9},
	{"xiangfang", [3][2]float64{{126.6826, 45.7077}, {126.6591, 45.7215}, {126.6438, 45.7029}}, 58, 4.8, 0.9},
	{"pingfang", [3][2]float64{{126.6576, 45.5979}, {126.6341, 45.6117}, {126.6188, 45.5931}}, 55, 3.5, 0.3},
	{"songbei", [3][2]float64{{126.5369, 45.7945}, {126.5134, 45.8083}, {126.4981, 45.7897}}, 35, 4.0, 0.5},
	{"hulan", [3][2]float64{{126.6079, 45.8895}, {126.5844, 45.9033}, {126.5691, 45.8847}}, 52, 3.2, 0.6},
	{"acheng", [3][2]float64{{126.9781, 45.5487}, {126.9546, 45.5625}, {126.9393, 45.5439}}, 50, 2.8, 0.5},
	{"shuangcheng", [3][2]float64{{126.3326, 45.3832}, {126.3091, 45.3970}, {126.2938, 45.3784}}, 54, 2.5, 0.6},
}

// station is the position of the district's air station i.
func (d district) station(i int) (lon, lat float64) {
	return d.stations[i][0], d.stations[i][1]
}

var (
	roads          = []string{"youyi-rd", "zhongshan-rd", "xuefu-rd", "hongqi-ave", "ring-2", "ring-3"}
	busLines       = []string{"1", "8", "11", "29", "64", "104", "202", "338"}
	metroLines     = []string{"m1", "m2", "m3"}
	categories     = []string{"heating", "snow-ice", "traffic", "environment", "housing", "water-power", "social-security", "market"}
	categoryWeight = []float64{0.28, 0.16, 0.12, 0.08, 0.12, 0.1, 0.08, 0.06}
	services       = []string{"business-licence", "social-insurance", "housing-fund", "residence-permit", "tax", "medical-insurance"}
)

var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return time.FixedZone("CST", 8*3600)
	}
	return loc
}()

// hour returns the local time of day in hours, 0-24.
func hour(t time.Time) float64 {
	lt := t.In(shanghai)
	return float64(lt.Hour()) + float64(lt.Minute())/60 + float64(lt.Second())/3600
}

// peaks is near 1 at the morning and evening rush hours, near 0 at night.
func peaks(h float64) float64 {
	g := func(c, w float64) float64 { return math.Exp(-((h - c) * (h - c)) / (2 * w * w)) }
	return math.Max(g(8, 1.0), g(17.75, 1.2))
}

// daytime is near 1 from 9 to 17 and near 0 at night.
func daytime(h float64) float64 {
	return 1 / (1 + math.Exp(-(h-8)*1.5)) * 1 / (1 + math.Exp((h-18)*1.5))
}

// outdoorTemp is a Harbin winter day: about -26 °C before dawn, -14 °C mid-afternoon.
func outdoorTemp(h float64) float64 {
	return -20 + 6*math.Sin((h-9)/24*2*math.Pi)
}

// aqi converts PM2.5 to China's AQI by the HJ 633-2012 breakpoints.
func aqi(pm25 float64) int {
	bp := []struct{ c, i float64 }{{0, 0}, {35, 50}, {75, 100}, {115, 150}, {150, 200}, {250, 300}, {350, 400}, {500, 500}}
	for k := 1; k < len(bp); k++ {
		if pm25 <= bp[k].c {
			lo, hi := bp[k-1], bp[k]
			return int(math.Round(lo.i + (pm25-lo.c)*(hi.i-lo.i)/(hi.c-lo.c)))
		}
	}
	return 500
}

// message is one MQTT publication.
type message struct {
	topic   string
	payload []byte
}

// generator makes one message of a feed at time t.
type generator struct {
	feed   string
	weight float64 // share of the total rate
	make   func(r *rand.Rand, t time.Time) message
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func pickWeighted(r *rand.Rand, xs []string, w []float64) string {
	x := r.Float64()
	for i, wi := range w {
		if x < wi {
			return xs[i]
		}
		x -= wi
	}
	return xs[len(xs)-1]
}

func pickDistrict(r *rand.Rand) district {
	total := 0.0
	for _, d := range districts {
		total += d.people
	}
	x := r.Float64() * total
	for _, d := range districts {
		if x < d.people {
			return d
		}
		x -= d.people
	}
	return districts[0]
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

var generators = []generator{
	{"air-quality", 0.22, func(r *rand.Rand, t time.Time) message {
		d := pick(r, districts)
		h := hour(t)
		// Coal heating and still night air push PM2.5 up in the morning and evening.
		pm25 := clamp(d.pollution*(0.8+0.6*peaks(h)+0.2*math.Sin(float64(t.Unix())/900))+r.NormFloat64()*6, 3, 600)
		st := r.IntN(len(d.stations))
		lon, lat := d.station(st)
		return message{
			topic: fmt.Sprintf("harbin/env/air/%s/st%02d", d.name, 1+st),
			payload: fmt.Appendf(nil, `{"ts":%d,"pm25":%.1f,"pm10":%.1f,"no2":%.1f,"aqi":%d,"lon":%.4f,"lat":%.4f,"meta":{"source":"hrb-eeb"}}`,
				t.UnixMilli(), pm25, pm25*1.6+r.Float64()*10, 20+30*peaks(h)+r.Float64()*8, aqi(pm25), lon, lat),
		}
	}},
	{"traffic", 0.22, func(r *rand.Rand, t time.Time) message {
		d := pick(r, districts)
		congestion := clamp(d.traffic*(0.35+0.9*peaks(hour(t)))+r.NormFloat64()*0.6, 1, 10)
		speed := clamp(62-5.5*congestion+r.NormFloat64()*3, 3, 90)
		return message{
			topic: fmt.Sprintf("harbin/traffic/%s/%s", d.name, pick(r, roads)),
			payload: fmt.Appendf(nil, `{"ts":%d,"congestion_index":%.2f,"speed_kmh":%.1f,"vehicles_per_min":%d}`,
				t.UnixMilli(), congestion, speed, int(20+8*congestion+r.Float64()*10)),
		}
	}},
	{"heating", 0.14, func(r *rand.Rand, t time.Time) message {
		d := pick(r, districts)
		out := outdoorTemp(hour(t))
		supply := clamp(75-0.9*out+r.NormFloat64()*2, 40, 130) // colder outside, hotter supply
		indoor := clamp(21+r.NormFloat64()*1.2, 12, 28)
		return message{
			topic: fmt.Sprintf("harbin/heating/%s/plant%d", d.name, 1+r.IntN(2)),
			payload: fmt.Appendf(nil, "heating,loop=primary supply_temp=%.1f,return_temp=%.1f,pressure=%.2f,indoor_temp=%.1f %d\n",
				supply, supply-22-r.Float64()*4, 0.55+r.Float64()*0.1, indoor, t.Unix()),
		}
	}},
	{"snow", 0.08, func(r *rand.Rand, t time.Time) message {
		d := pick(r, districts)
		night := 1 - daytime(hour(t)) // crews work hardest at night, off the roads' peak
		return message{
			topic: fmt.Sprintf("harbin/snow/%s/crew%d", d.name, 1+r.IntN(4)),
			payload: fmt.Appendf(nil, `{"ts":%d,"cleared_km":%.2f,"trucks_active":%d,"snow_depth_cm":%.1f}`,
				t.UnixMilli(), 0.1+r.Float64()*0.5*(0.5+night), 2+r.IntN(6)+int(6*night), clamp(8+r.NormFloat64()*3, 0, 40)),
		}
	}},
	{"transit", 0.16, func(r *rand.Rand, t time.Time) message {
		d := pick(r, districts)
		mode, line := "bus", pick(r, busLines)
		if r.IntN(3) == 0 {
			mode, line = "metro", pick(r, metroLines)
		}
		load := clamp(25+85*peaks(hour(t))+r.NormFloat64()*10, 0, 160)
		capacity := 90.0
		if mode == "metro" {
			capacity = 1400
		}
		return message{
			topic: fmt.Sprintf("harbin/transit/%s/%s", mode, line),
			payload: fmt.Appendf(nil, `{"ts":%d,"load_pct":%.1f,"passengers":%d,"delay_s":%.0f,"district":%q}`,
				t.UnixMilli(), load, int(load/100*capacity), clamp(30+240*peaks(hour(t))*r.Float64()+r.NormFloat64()*30, -60, 1800), d.name),
		}
	}},
	{"citizen-cases", 0.2, demoCases.make}, // both the opening of requests and their later events
	{"gov-services", 0.08, func(r *rand.Rand, t time.Time) message {
		d := pickDistrict(r)
		channel, processing := "online", 5+r.ExpFloat64()*15
		if r.IntN(100) >= 72 {
			channel, processing = "counter", 20+r.ExpFloat64()*40
		}
		rating := ""
		if r.IntN(2) == 0 {
			rating = fmt.Sprintf(`,"rating":%.1f`, clamp(4.8-processing/60+r.NormFloat64()*0.3, 1, 5))
		}
		return message{
			topic: fmt.Sprintf("harbin/gov/%s/%s", d.name, channel),
			payload: fmt.Appendf(nil, `{"ts":%d,"service":%q,"processing_min":%.1f,"backlog":%d%s}`,
				t.UnixMilli(), pick(r, services), processing, int(60+120*daytime(hour(t))+r.Float64()*30), rating),
		}
	}},
}

// garbage is what a faulty sender publishes to a feed's topic.
func garbage(r *rand.Rand) message {
	d := pick(r, districts)
	bad := []string{
		`{"ts":"soon","pm25":"high"}`,
		`{"ts":` + fmt.Sprint(time.Now().UnixMilli()) + `,"pm25":-12,"pm10":1,"aqi":3}`,
		`<reading pm25="40"/>`,
		`{"ts":1,"pm25":`,
	}
	return message{topic: fmt.Sprintf("harbin/env/air/%s/st09", d.name), payload: []byte(pick(r, bad))}
}

// surnames and givenNames make up callers' names.
var (
	surnames   = []string{"王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"}
	givenNames = []string{"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋"}
)
