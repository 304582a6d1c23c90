// i18n.js: the pages in Chinese (zh-CN, the default for Harbin) and English.
//
// The language comes from ?lang=zh|en in the address (remembered on this
// device), else what was remembered, else Chinese. Texts are keyed by their
// English; an element with data-i18n has its text translated on load, and
// an element with id "lang" becomes the switch between the two.
const ZH = {
  // connection and states
  "live": "实时", "connecting": "连接中", "reconnecting": "重连中", "offline": "离线",
  "ok": "正常", "warn": "预警", "crit": "严重", "stale": "数据过期", "nodata": "无数据", "cleared": "已解除",
  "Alerts": "告警", "none": "无", "no data": "无数据", "no data in {w}": "{w}内无数据", "{age} ago": "{age}前",
  "Feed silent: {title}, {quiet}": "数据源中断：{title}，{quiet}", "nothing for {age}": "已{age}无数据",
  "nothing since cityscreen started": "自启动以来无数据",
  "Access revoked or not valid: this display needs a new token": "访问已撤销或无效：此显示屏需要新的令牌",
  "Access revoked or not valid: sign in again, or open this page with a valid #token=…": "访问已撤销或无效：请重新登录，或使用有效的 #token=… 打开本页",
  "Connection lost: reconnecting. Values are shown as they were.": "连接中断，正在重连。显示的是中断前的数值。",
  "Offline: values shown with their age.": "离线：显示的数值附有其时间。",
  // aggregates and windows
  "count": "计数", "sum": "合计", "mean": "平均", "min": "最小", "max": "最大", "last": "最新", "rate": "速率",
  "distinct": "去重数", "ratio": "占比", "p50": "中位数", "p90": "90分位", "p95": "95分位", "p99": "99分位", "today": "今日", "this hour": "本小时", "this week": "本周",
  "yesterday": "昨日", "last hour": "上一小时", "last week": "上周",
  // cases
  "open": "在办", "overdue": "超期", "due_soon": "即将到期", "oldest_age": "最长在办(小时)",
  "late by {age}": "超期{age}", "due in {age}": "{age}后到期",
  "Cases": "工单", "Case": "工单号", "Opened": "受理时间", "Due": "办理时限", "Late": "超期", "Closed": "办结时间",
  "Reopened": "重办次数", "Events": "办理过程", "Time": "时间", "Details": "详情", "closed": "已办结",
  "no such panel": "无此面板", "no longer held: its events follow": "已不在内存中，以下为其办理记录",
  "open this page from a list of cases: ?screen=…&panel=…": "请从工单列表打开本页：?screen=…&panel=…",
  "The cases of a list panel, as the wall shows them, with every column. Select a case to see its events. Refreshed every 5 seconds.": "列表面板中的工单（与大屏一致），含全部字段。选择工单可查看其办理过程。每 5 秒刷新。",
  // ages and windows
  "{n} ms": "{n}毫秒", "{n} s": "{n}秒", "{n} min": "{n}分钟", "{n} h": "{n}小时", "{n} d": "{n}天",
  // the map
  "(none)": "（无）", "Not on the map": "不在地图上", "no position": "无位置", "Updated {age} ago": "{age}前更新",
  "Districts without data": "无数据的区域", "Station": "监测站",
  // pages
  "Sign in": "登录", "User": "用户名", "Password": "密码", "Sign-in failed": "登录失败", "Setup failed": "初始化失败",
  "Create the first administrator": "创建首个管理员", "Setup code": "初始化码", "Create and sign in": "创建并登录",
  "Give the one-time setup code that the server printed when it started.": "请输入服务器启动时打印的一次性初始化码。",
  "Password (12 characters or more)": "密码（至少 12 个字符）",
  "Signed in as": "当前用户", "Sign out": "退出登录", "Screen": "屏幕", "Wall": "大屏", "Summary": "摘要",
  "Screens of this server. The wall view is for the command centre's displays; the summary is for phones.": "本服务器的屏幕。大屏视图用于指挥中心显示屏，摘要用于手机。",
  "Alerts: active, cleared, acknowledge": "告警：当前、已解除、确认", "Feeds: health and rejected messages": "数据源：状态与被拒消息",
  "Metrics": "指标", "Readiness": "就绪状态", "All screens": "全部屏幕",
  "Acknowledge": "确认", "Not acknowledged: ": "未能确认：",
  "Active alerts, worst and oldest first, then the recently cleared. Operators acknowledge an alert here; every screen then shows who did. Refreshed every 5 seconds.": "当前告警（最严重、最早的在前），其后是最近解除的。值班员在此确认告警，所有屏幕随即显示确认人。每 5 秒刷新。",
  "Status": "状态", "Panel": "面板", "Group": "分组", "Value": "数值", "Since": "开始", "Acknowledged": "已确认",
  "Feeds": "数据源", "Rejected messages": "被拒消息",
  "Every message received per feed, what was accepted and what was rejected. Select a feed to see its newest rejected messages and why.": "各数据源收到的消息，以及被接受和被拒绝的数量。选择一个数据源，可查看其最新的被拒消息及原因。",
  "Feed": "数据源", "Topic": "主题", "Format": "格式", "Per second": "每秒", "Received": "收到", "Accepted": "接受", "Rejected": "拒绝", "Last seen": "最近一次", "Broker": "消息代理",
  "The MQTT broker reported dropping messages because of its limits, last at {when} ({total} since it started, for all its clients): readings sent to cityscreen may be among them. Raise its max_queued_messages (see docs/reliability.md).": "MQTT 消息代理报告因其限制丢弃了消息，最近一次在 {when}（自其启动以来共 {total} 条，涵盖其全部客户端）：发往 cityscreen 的读数可能在其中。请调高其 max_queued_messages（见 docs/reliability.md）。",
  "Register a feed": "注册数据源",
  // history
  "History": "历史", "History ›": "历史 ›", "Compare with": "对比", "nothing": "不对比", "a day earlier": "前一天", "a week earlier": "前一周",
  "From": "从", "To": "至", "Show": "显示", "Download CSV": "下载 CSV", "{agg} per {step}": "每{step}{agg}", "{d} earlier": "早{d}",
  "No history: ": "无历史数据：", "open this page from a panel: ?screen=…&panel=…": "请从面板打开本页：?screen=…&panel=…",
  "Select a range on the chart to zoom in; the address of this page shows the same history to whoever opens it.": "在图上框选一段即可放大；本页地址可分享，打开者看到同样的历史。",
  "Panels": "面板",
  "escalated": "已升级", "Resolve": "手动解除", "why": "原因", "by hand": "手动", "Shelve": "搁置", "Unshelve": "取消搁置", "for, like 2h": "时长，如 2h", "shelved until {when}": "搁置至 {when}", "Assign": "指派", "Assigned to": "指派给", "comment": "备注", "person or department": "人员或部门", "Not done: ": "未完成：",
  "Active alerts, worst and oldest first, then the recently cleared. Operators acknowledge an alert here (with a comment) and assign it to who must act; every screen then shows it. An alert not acknowledged in time escalates. Refreshed every 5 seconds.": "当前告警（最严重、最早的在前），其后是最近解除的。值班员在此确认告警（可附备注）并指派处置人或部门，所有屏幕随即显示。未及时确认的告警将升级。每 5 秒刷新。",
  "Write the definition as JSON (the keys of a feed file), try it against a payload, then register it. It is live at once and kept across restarts.": "以 JSON 写出定义（与数据源文件的键相同），先用一条消息试运行，再注册。注册后立即生效，重启后仍保留。",
};

const params = new URLSearchParams(location.search);
let lang = params.get("lang");
try {
  if (lang === "zh" || lang === "en") localStorage.setItem("cityscreen.lang", lang);
  else lang = localStorage.getItem("cityscreen.lang");
} catch (e) { /* no storage: the address decides */ }
if (lang !== "en") lang = "zh";

// t translates an English text, filling {name} from args.
function t(text, args) {
  let s = lang === "zh" && ZH[text] !== undefined ? ZH[text] : text;
  for (const k in args || {}) s = s.split("{" + k + "}").join(args[k]);
  return s;
}

const locale = lang === "zh" ? "zh-CN" : "en-GB";

// when writes a time in the city's time zone, in the page's language.
function when(t) {
  return t ? new Date(t).toLocaleString(locale, { timeZone: "Asia/Shanghai", hour12: false }) : "";
}

// duration writes a window or an age as the server writes it (5m, 1h,
// 1h30m, 90s) in words of the page's language: 5 min, 5分钟. Other texts
// (today, this week) are translated as they are.
function duration(s) {
  if (!/^(\d+(\.\d+)?(h|m|s|ms))+$/.test(s || "")) return t(s || "");
  const units = { h: "{n} h", m: "{n} min", s: "{n} s", ms: "{n} ms" };
  const parts = [];
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let m;
  while ((m = re.exec(s))) parts.push(t(units[m[2]], { n: m[1] }));
  return parts.join(lang === "zh" ? "" : " ");
}

function apply() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.textContent.trim());
  const sw = document.getElementById("lang");
  if (sw) {
    sw.textContent = lang === "zh" ? "English" : "中文";
    sw.href = "#";
    sw.addEventListener("click", (e) => {
      e.preventDefault();
      const u = new URL(location.href);
      u.searchParams.set("lang", lang === "zh" ? "en" : "zh");
      location.href = u.toString();
    });
  }
}
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", apply);
else apply();

export { t, lang, locale, when, duration };
