"""What generated data is made of: strings that break naive code, and pools of plausible values."""

from __future__ import annotations

# Names that break naive code: emoji, CJK, RTL, accents, quotes, backslashes, odd spaces.
NAMES = [
    "Newsletter",
    "VIP 🌟 Customers",
    "Clientes de España",
    "日本のお客様",
    "عملاء مميزون",
    "לקוחות חוזרים",
    "Ünïcödé «Guillemets»",
    'He said "hi"',
    "Back\\slash\\List",
    "Préférences été",
    "Emoji 🎉🔥",
    "Ελληνικοί πελάτες",
    "Ñandú & Co",
    "Zero\u200bwidth joiner",
    "  leading spaces",
    "trailing space ",
    "'single' quotes",
    "Müller\u2019s Öko-Liste",
    "中文 订阅者",
    "한국 고객",
    "Русские клиенты",
    "Sample Data List",
    "Preview List",
    "SMS Subscribers",
    "Shopify Customers",
    "🙂",
    "Percent %20 & ampersand",
    "Comma, (parens) [brackets]",
]
CAMPAIGN_NAMES = [
    "Black Friday 🛍️",
    "Soldes d'été",
    "春のセール",
    "تخفيضات الصيف",
    'The "Big" Sale',
    "Back\\slash promo",
    "Weekly Newsletter #",
    "Copy of Weekly Newsletter #",
    "Ünïcödé launch",
    "Рассылка",
    "Cyber Monday ⚡",
    "Welcome back, friend",
    "Restock: 🧦 socks",
    "Holiday 🎄 Gift Guide",
    "עדכון חודשי",
    "Flash sale 50% off",
    "Test campaign (do not send)",
]
FLOW_NAMES = [
    "Welcome Series 👋",
    "Abandoned Cart \u2013 Reminder",
    "Post-Purchase «Merci»",
    "Winback 再来店",
    "Browse Abandonment",
    "Birthday 🎂",
    'Flow "quoted"',
    "Back\\slash Flow",
    "Sunset unengaged",
    "Back in Stock",
    "Price Drop 📉",
    "Customer Thank You",
    "استعادة السلة",
    "VIP ✨ Tier",
]
SUBJECTS = [
    "Your cart misses you 🛒",
    "¡Última oportunidad!",
    "新着アイテムのお知らせ",
    "50% off — today only",
    'Don\'t miss "the drop"',
    "C:\\Users\\you deserve a treat",
    "Привет! Новая коллекция",
    "🎁🎁🎁",
    "تخفيضات حصرية لك",
    "Merci pour votre commande n°1234",
    "Re: your order",
    "",
]
DOMAINS = ["gmail.com", "yahoo.co.jp", "outlook.com", "icloud.com", "example.org", "xn--bcher-kva.example"]
CLIENTS = [
    ("Apple Mail", "iOS", "Mobile"),
    ("Gmail", "Android", "Mobile"),
    ("Outlook", "Windows", "Desktop"),
    ("Gmail", "Web", "Webmail"),
    ("Thunderbird", "Linux", "Desktop"),
]
URLS = [
    "https://shop.example/products/chaussures-été?utm_source=klaviyo&utm_medium=email",
    "https://shop.example/コレクション/new",
    "https://shop.example/cart?items=1,2,3&promo=%F0%9F%8E%89",
    'https://shop.example/a"quote',
    "https://shop.example/",
]
CUSTOM_METRIC_NAMES = [
    "Événement personnalisé",
    "カスタム イベント",
    "Lead 🚀 Captured",
    'Quote "this" metric',
    "back\\slash metric",
    "Viewed Wishlist",
    "Loyalty Points Earned",
    "تسجيل الدخول",
]
OTHER_KLAVIYO_METRICS = [
    "Active on Site",
    "Viewed Product",
    "Subscribed to List",
    "Unsubscribed from List",
    "Unsubscribed",
    "Received SMS",
    "Clicked SMS",
    "Received Push",
    "Opened Push",
    "Updated Email Preferences",
    "Subscribed to Back in Stock",
    "Form submitted by profile",
    "Viewed Collection",
]
SHOPIFY_METRICS = [
    "Placed Order",
    "Ordered Product",
    "Fulfilled Order",
    "Cancelled Order",
    "Refunded Order",
    "Checkout Started",
]
PRODUCTS = ["Chaussures d'été", "保温ボトル", "Socks 🧦", 'The "Classic" Tee', "Back\\pack", "Ñ-Hoodie"]
# What campaign messages say (messages.py): senders, preview texts, SMS bodies, push titles and bodies.
SENDERS = [
    ("bonjour@eclair.example", "Boutique Éclair 🌸"),
    ("news@eclair.example", 'Éclair "News"'),
    ("no-reply@eclair.example", None),
]
PREVIEW_TEXTS = ["Jusqu'à -50 % 🎉", "Nouveautés de la semaine", None, "返品無料・送料無料", "Line one\nline two", " "]
SMS_BODIES = [
    "Boutique Éclair : -20 % ce week-end 🛍️ https://shop.example/s STOP au 36111",
    "春のセール開始 https://shop.example/s",
    'Reply "STOP" to opt out \\ back',
    "",
]
PUSH_TEXTS = [("Soldes 🔥", "Jusqu'à -50 %"), ("新着", "新しいコレクション"), (None, "Body only"), ("Title only", None)]
MEDIA_URLS = ["https://cdn.shop.example/média/promo.png", "https://cdn.shop.example/a%20b.gif"]
